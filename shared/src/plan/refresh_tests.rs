//! Tests of [`super`]: units, the sample and its early decision, spans and what they leave
//! to replace, the report and when a refreshed table is analyzed.
use super::*;

fn key_range(i: usize) -> ChunkRange {
    ChunkRange::Key {
        lower: (i > 0).then(|| vec![(i * 10).to_string()]),
        upper: Some(vec![((i + 1) * 10).to_string()]),
    }
}

/// Table 0 has `big` ranges, table 1 `small`.
fn two_tables(big: usize, small: usize) -> Vec<Unit> {
    (0..big)
        .map(|i| (0, i))
        .chain((0..small).map(|i| (1, i)))
        .map(|(table, i)| Unit {
            table,
            range: key_range(i),
        })
        .collect()
}

fn found(which: &[usize], differing: impl Fn(usize) -> bool) -> Vec<Compared> {
    which
        .iter()
        .map(|&unit| Compared {
            unit,
            differs: differing(unit),
            source_rows: 1,
        })
        .collect()
}

#[test]
fn a_table_is_analyzed_after_a_refresh_only_when_much_of_it_was_replaced() {
    let t = |action, rows| TableRefresh {
        action,
        rows,
        ..Default::default()
    };
    assert!(!t("unchanged", 0).needs_analyze(1000, true));
    assert!(t("whole", 10).needs_analyze(1000, false));
    assert!(
        !t("ranges", 150).needs_analyze(1000, false),
        "under 50 + 10 %"
    );
    assert!(t("ranges", 151).needs_analyze(1000, false));
    assert!(t("ranges", 1).needs_analyze(1000, true), "--analyze on");
    assert!(t("ranges", 1).needs_analyze(-1, false), "never analyzed");
}

#[test]
fn the_sample_is_a_few_evenly_spread_ranges_of_each_table_of_many() {
    let units = two_tables(300, 5);
    let (first, rest) = sample(&units);
    assert_eq!(first, vec![0, 50, 100, 150, 200, 250]);
    assert_eq!(first.len() + rest.len(), units.len());
    assert!((300..305).all(|i| rest.contains(&i)), "small tables wait");
    let (first, _) = sample(&two_tables(17, 0));
    assert_eq!(first.len(), SAMPLED);
    let (first, rest) = sample(&two_tables(SAMPLE_ABOVE, 0));
    assert!(first.is_empty() && rest.len() == SAMPLE_ABOVE);
}

#[test]
fn a_table_is_mostly_changed_when_more_than_the_share_of_its_sample_differs() {
    let units = two_tables(300, 5);
    let (first, _) = sample(&units);
    let all = found(&first, |_| true);
    assert_eq!(mostly_changed(&units, &all, 0.5), BTreeSet::from([0]));
    let half = found(&first, |u| u < 150);
    assert!(
        mostly_changed(&units, &half, 0.5).is_empty(),
        "3 of 6 is not more than half"
    );
    let small = found(&[300, 301, 302, 303, 304], |_| true);
    assert!(
        mostly_changed(&units, &small, 0.5).is_empty(),
        "never from a small table"
    );
}

#[test]
fn what_a_span_leaves_to_replace_reads_as_ranges_and_as_the_positions_of_before() {
    let ranges: Vec<ChunkRange> = (0..3).map(key_range).collect();
    let span = Span { table: 0, ranges };
    let before: Vec<Pending> = serde_json::from_str("[2, 0]").expect("positions");
    let got: Vec<Option<ChunkRange>> = before.iter().map(|p| p.range_in(&span)).collect();
    assert_eq!(got, vec![Some(key_range(2)), Some(key_range(0))]);
    let run = ChunkRange::Key {
        lower: Some(vec!["12".into()]),
        upper: Some(vec!["15".into()]),
    };
    let json = serde_json::to_string(&[Pending::Range(run.clone())]).expect("json");
    let back: Vec<Pending> = serde_json::from_str(&json).expect("ranges");
    assert_eq!(back[0].range_in(&span), Some(run));
    assert_eq!(Pending::Position(3).range_in(&span), None, "past the span");
}

#[test]
fn a_span_is_a_run_of_one_table_s_ranges_and_all_of_it_is_one_range() {
    let ranges: Vec<ChunkRange> = (0..5).map(key_range).collect();
    assert_eq!(
        bounds_between(&ranges),
        Some((1..5).map(|i| vec![(i * 10).to_string()]).collect())
    );
    let gap = [key_range(0), key_range(2)];
    assert_eq!(bounds_between(&gap), None, "not contiguous");
    let span = Span {
        table: 0,
        ranges: ranges[1..3].to_vec(),
    };
    assert_eq!(
        span.all(),
        ChunkRange::Key {
            lower: Some(vec!["10".into()]),
            upper: Some(vec!["30".into()]),
        }
    );
    let first = Span {
        table: 0,
        ranges: ranges[..2].to_vec(),
    };
    assert!(matches!(first.all(), ChunkRange::Key { lower: None, .. }));
    assert!(span_mostly_changed(3, 4, 0.5));
    assert!(
        !span_mostly_changed(2, 4, 0.5),
        "half is not more than half"
    );
    assert!(
        !span_mostly_changed(1, 1, 0.5),
        "one range is replaced as itself"
    );
    let mib = 1 << 20;
    assert_eq!(span_sizes(256 * mib, 8 * mib), (8 * mib, 32));
    assert_eq!(span_sizes(64 * 1024, 8 * mib), (4096, 16));
}

#[test]
fn the_service_s_report_sums_each_table_s_spans() {
    let plan = Plan::for_tests(vec![
        Table::for_tests("app", "a"),
        Table::for_tests("app", "b"),
    ]);
    let spans = [
        Span {
            table: 0,
            ranges: (0..3).map(key_range).collect(),
        },
        Span {
            table: 0,
            ranges: (3..5).map(key_range).collect(),
        },
        Span {
            table: 1,
            ranges: vec![ChunkRange::Whole],
        },
    ];
    let d = |compared, differing, rows| SpanTotals {
        compared,
        differing,
        rows,
        whole_table: false,
    };
    let r = report_of_spans(&plan, &spans, &[d(3, 1, 10), d(2, 0, 0), d(1, 1, 7)]);
    assert_eq!((r.ranges_compared, r.ranges_differing), (6, 2));
    let a = &r.tables[0];
    assert_eq!(
        (a.ranges, a.differing, a.rows, a.action),
        (5, 1, 10, "ranges")
    );
    assert_eq!((r.tables[1].action, r.tables[1].rows), ("whole", 7));
    let swapped = SpanTotals {
        whole_table: true,
        ..d(2, 1, 9)
    };
    let r = report_of_spans(&plan, &spans[1..2], &[swapped]);
    assert_eq!(r.tables[0].action, "whole", "a unique value swapped");
    let none = report_of_spans(&plan, &spans[1..2], &[d(2, 0, 0)]);
    assert_eq!(none.tables[0].action, "unchanged");
}
