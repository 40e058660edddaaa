//! Tests of [`super`]: counts, limits and the scale model.
use super::*;

const GB: u64 = 1 << 30;

/// A source of `total` bytes shaped like a real one: 10 tables hold half of it, 90 hold
/// 45 %, 400 small ones the rest, over 4 foreign-key levels; chunks of `chunk` bytes.
fn synthetic(total: u64, chunk: u64, kind: JobKind, fanout: u32) -> Workload {
    let shares = (0..500).map(|i| match i {
        0..=9 => total / 20,
        10..=99 => total / 200,
        _ => total / 8000,
    });
    let chunks = shares
        .enumerate()
        .flat_map(|(i, bytes)| {
            let n = bytes.div_ceil(chunk).max(1);
            (0..n).map(move |_| ChunkLoad {
                bytes: bytes / n,
                level: i % 4,
            })
        })
        .collect();
    Workload {
        chunks,
        tables: 500,
        kind,
        fanout,
        keep_indexes: false,
        budget_seconds: INVOCATION_SECONDS,
        window_seconds: INVOCATION_SECONDS,
    }
}

fn small(kind: JobKind) -> Workload {
    Workload {
        chunks: vec![
            ChunkLoad {
                bytes: 100 << 20,
                level: 0,
            },
            ChunkLoad {
                bytes: 100 << 20,
                level: 0,
            },
            ChunkLoad {
                bytes: 50 << 20,
                level: 1,
            },
        ],
        tables: 2,
        kind,
        fanout: 4,
        keep_indexes: false,
        budget_seconds: INVOCATION_SECONDS,
        window_seconds: INVOCATION_SECONDS,
    }
}

#[test]
fn rates_come_from_their_settings_and_default_where_unset() {
    let r = Rates::from_lookup(&|k| (k == "DBSYNC_COST_EXPORT_MBPS").then(|| "80".into()))
        .expect("rates");
    assert_eq!(r.export_mbps, 80.0);
    assert_eq!(r.transition, 0.000_025);
}

#[test]
fn a_rate_that_is_not_a_number_or_a_throughput_of_nothing_is_refused_by_its_setting() {
    let e = Rates::from_lookup(&|k| (k == "DBSYNC_COST_S3_PUT").then(|| "cheap".into()))
        .expect_err("refused");
    assert!(e.to_string().contains("DBSYNC_COST_S3_PUT"), "{e}");
    let e = Rates::from_lookup(&|k| (k == "DBSYNC_COST_TARGET_MBPS").then(|| "0".into()))
        .expect_err("refused");
    assert!(e.to_string().contains("DBSYNC_COST_TARGET_MBPS"), "{e}");
}

#[test]
fn a_small_sync_counts_one_part_per_chunk_a_map_child_per_chunk_and_part_and_a_wave_per_level() {
    let p = estimate(&small(JobKind::Sync), &Rates::default());
    assert_eq!((p.chunks, p.usage.parts, p.usage.waves), (3, 3, 2));
    assert_eq!(p.usage.map_child_executions, 6);
    assert_eq!(p.usage.map_runs, 3);
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    assert!(p.cost.total > 0.0 && p.cost.total < 0.01, "{:?}", p.cost);
    assert!(p.estimated_duration_seconds > p.export_seconds);
    let e = estimate(&small(JobKind::Export), &Rates::default());
    assert_eq!(
        (
            e.usage.waves,
            e.usage.map_child_executions,
            e.import_seconds
        ),
        (0, 3, 0)
    );
    assert!(e.cost.total < p.cost.total);
}

#[test]
fn a_chunk_longer_than_one_invocation_is_several_parts_and_limits_are_warned_before_the_run() {
    let mut w = small(JobKind::Sync);
    w.budget_seconds = 1.0;
    let p = estimate(&w, &Rates::default());
    // 40 MB/s for 1 s: a 100 MiB chunk is 3 parts.
    assert_eq!(p.usage.parts, 3 + 3 + 2);
    w.chunks = vec![ChunkLoad {
        bytes: 300 * GB,
        level: 0,
    }];
    w.fanout = 20_000;
    let p = estimate(&w, &Rates::default());
    let all = p.warnings.join("\n");
    for limit in ["upload parts", "Distributed Map", "continuations"] {
        assert!(all.contains(limit), "{limit}: {all}");
    }
    let dump = Workload {
        kind: JobKind::Dump,
        chunks: vec![
            ChunkLoad {
                bytes: 1 << 20,
                level: 0
            };
            6_000
        ],
        ..small(JobKind::Dump)
    };
    let p = estimate(&dump, &Rates::default());
    assert!(
        p.warnings.iter().any(|w| w.contains("pieces")),
        "{:?}",
        p.warnings
    );
}

#[test]
fn the_scale_model_plans_100_gb_within_the_goals_and_1_tb_within_every_service_limit() {
    let r = Rates::default();
    let chunk = 256 << 20;
    let p = estimate(&synthetic(100 * GB, chunk, JobKind::Sync, 64), &r);
    eprintln!(
        "100 GB at 64: {} chunks, {} Map runs, {} children, {} transitions, {} events, export {} s, import {} s, {:.0} GB-s, ${:.2} (${:.4}/GB): {:?}",
        p.chunks, p.usage.map_runs, p.usage.map_child_executions, p.usage.state_transitions,
        p.usage.history_events, p.export_seconds, p.import_seconds, p.usage.lambda_gb_seconds,
        p.cost.total, p.cost.per_gb, p.cost
    );
    assert!(p.export_seconds < 600, "export {} s", p.export_seconds);
    assert!(p.import_seconds < 1200, "import {} s", p.import_seconds);
    assert!(p.cost.per_gb < 0.10, "{:?}", p.cost);
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    for fanout in [64, 256] {
        let p = estimate(&synthetic(1024 * GB, chunk, JobKind::Sync, fanout), &r);
        eprintln!(
            "1 TB at {fanout}: {} chunks, {} Map runs, {} children, {} transitions, {} events, {:.0} GB-s, export {} s, import {} s, ${:.2} (${:.4}/GB), {:?}",
            p.chunks, p.usage.map_runs, p.usage.map_child_executions, p.usage.state_transitions,
            p.usage.history_events, p.usage.lambda_gb_seconds, p.export_seconds, p.import_seconds,
            p.cost.total, p.cost.per_gb, p.warnings
        );
        assert!(p.usage.history_events < MAX_HISTORY_EVENTS);
        assert!(p.cost.per_gb < 0.10);
        // Every limit holds: the terabyte's index rebuild, longer than one invocation, is
        // several Finalize calls, priced as such.
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
        let kept = Workload {
            keep_indexes: true,
            ..synthetic(1024 * GB, chunk, JobKind::Sync, fanout)
        };
        let kept = estimate(&kept, &r);
        assert!(kept.warnings.is_empty());
        assert!(
            p.usage.lambda_invocations >= kept.usage.lambda_invocations + 4,
            "the rebuild's Finalize continuations: {} vs {}",
            p.usage.lambda_invocations,
            kept.usage.lambda_invocations
        );
    }
}
