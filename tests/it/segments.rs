//! Budgeted chunk exports (what one Lambda invocation does): a chunk exported page by page in
//! several invocations, each closing its own part and handing over a continuation, imports
//! back byte for byte, whatever the key kind.

use super::*;
use dbsync_core::model::part::{segment_id, segment_key, ExportedPart};
use dbsync_core::parts::PartStore;
use dbsync_core::pipeline::segment::{export_segment, Budget, PartTarget, SegmentSpec};
use dbsync_core::plan::chunks::Sizing;
use dbsync_core::Role;

#[tokio::test]
async fn a_chunk_exported_in_many_budgeted_invocations_imports_back_exactly() {
    let p = adversarial("segments").await;
    let dir = std::env::temp_dir().join(format!("dbsync-it-{}", p.name));
    let store = Arc::new(dbsync_core::parts::LocalStore::new(&dir));
    // One snapshot for every invocation, as the serverless snapshot holder provides.
    let src = p
        .source_spec()
        .connect(Role::Source, "dbsync-seg")
        .await
        .expect("connect");
    src.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .await
        .expect("snapshot");
    let opts = Options {
        chunk_bytes: 64 * 1024,
        ..tiny_chunks()
    };
    let plan = pipeline::build_plan(&src, &opts.scope, Sizing::fixed(opts.chunk_bytes))
        .await
        .expect("plan");
    // A budget that is always spent: every invocation does exactly one page.
    let budget = Budget {
        deadline: std::time::Instant::now(),
        page_rows: 250,
        page_blocks: 3,
    };
    let mut parts = Vec::new();
    let mut continued = 0;
    for chunk in &plan.chunks {
        let table = &plan.catalog.tables[chunk.table];
        let mut resume = None;
        for n in 0.. {
            let key = segment_key(chunk, n);
            let spec = SegmentSpec {
                table,
                range: &chunk.range,
                resume: resume.as_ref(),
                budget,
                context: "t".into(),
            };
            let part = PartTarget {
                store: store.as_ref(),
                key: &key,
                level: 1,
            };
            let seg = export_segment(&src, spec, part)
                .await
                .unwrap_or_else(|e| panic!("{}: {e}", table.name));
            parts.push(ExportedPart {
                chunk: chunk.clone(),
                id: segment_id(chunk, n),
                key,
                stats: seg.stats,
                compressed_bytes: seg.compressed_bytes,
                snapshot: None,
            });
            match seg.resume {
                Some(r) => {
                    continued += 1;
                    // Continuations travel through Step Functions as JSON.
                    let json = serde_json::to_string(&r).expect("json");
                    resume = Some(serde_json::from_str(&json).expect("json back"));
                }
                None => break,
            }
        }
    }
    assert!(continued > 30, "only {continued} continuations");
    // Every table's rows are all there, once.
    for (i, t) in plan.catalog.tables.iter().enumerate() {
        let rows: u64 = parts
            .iter()
            .filter(|x| x.chunk.table == i)
            .map(|x| x.stats.rows)
            .sum();
        let n = dbsync_tests::scalar(
            &p.source_url,
            &format!("SELECT count(*)::text FROM ONLY {}", t.name.sql()),
        )
        .await;
        assert_eq!(rows.to_string(), n, "{}", t.name);
    }
    let mut seqs = plan.catalog.sequences.clone();
    dbsync_core::pg::catalog::read_sequence_values(&src, Role::Source, &mut seqs)
        .await
        .expect("sequences");
    let header = pipeline::ManifestHeader {
        job_id: "seg-job".into(),
        created_at: "now".into(),
        snapshot: "snap".into(),
        timings_ms: Default::default(),
    };
    let m = pipeline::assemble_manifest(&plan, header, parts, seqs);
    store
        .put(dbsync_core::model::manifest::KEY, &m.to_json())
        .await
        .expect("manifest");
    import(&p, store, &tiny_chunks()).await.expect("import");
    p.assert_identical().await;
    let _ = std::fs::remove_dir_all(dir);
}
