//! The request's parsing and checks, and the settings table against the request and the
//! execution input.

use super::*;
use crate::model::settings::SYNC_SETTINGS;
use std::collections::BTreeSet;

fn keys(v: Value) -> BTreeSet<String> {
    v.as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

#[test]
fn the_request_and_the_execution_input_hold_the_settings_table_s_fields_and_no_others() {
    let req: SyncRequest =
        serde_json::from_str(r#"{"from": "j", "backup": true, "source_connections": 1}"#)
            .expect("request");
    let fields = keys(serde_json::to_value(&req).expect("json"));
    let listed: BTreeSet<String> = SYNC_SETTINGS
        .iter()
        .filter_map(|s| s.request.map(String::from))
        .collect();
    assert_eq!(
        fields, listed,
        "SyncRequest against model::settings::SYNC_SETTINGS"
    );
    let sample: ExecutionInput =
        serde_json::from_str(include_str!("../../../../../events/execution.json"))
            .expect("events/execution.json");
    let fields = keys(serde_json::to_value(&sample).expect("json"));
    let listed: BTreeSet<String> = SYNC_SETTINGS
        .iter()
        .filter_map(|s| s.execution.map(String::from))
        .collect();
    assert_eq!(
        fields, listed,
        "ExecutionInput against model::settings::SYNC_SETTINGS"
    );
}

#[test]
fn an_execution_started_before_the_renames_still_reads() {
    let old = include_str!("../../../../../events/execution.json")
        .replace("snapshot_window_seconds", "window_seconds")
        .replace("export_budget_seconds\": null", "budget_seconds\": 7")
        .replace("\"analyze\": \"copy\"", "\"analyze\": false");
    let e: ExecutionInput = serde_json::from_str(&old).expect("old input");
    assert_eq!(e.snapshot_window_seconds, 840);
    assert_eq!(e.export_budget_seconds, Some(7));
    assert_eq!(e.analyze, Analyze::Off);
}

fn settings() -> ApiSettings {
    ApiSettings::from_lookup(&|k| match k {
        "DBSYNC_STATE_MACHINE_ARN" => {
            Some("arn:aws:states:eu-west-1:123456789012:stateMachine:dbsync".into())
        }
        "DBSYNC_MAX_CONCURRENCY" => Some("8".into()),
        _ => None,
    })
    .expect("settings")
}

fn refused(body: &str) -> String {
    let e = parse_request(body.as_bytes(), &settings()).expect_err("refused");
    let r = super::super::reply::ApiError::from(e).into_reply();
    assert_eq!(r.status, 400, "{body}: {:?}", r.body);
    r.body["error"]["message"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

#[test]
fn a_minimal_request_is_accepted_with_defaults() {
    let r = parse_request(
        br#"{"source_secret":"prod/db","target_secret":"staging/db"}"#,
        &settings(),
    )
    .expect("accepted");
    assert_eq!(r.mode, Mode::Sync);
    assert_eq!(r.consistency, Consistency::Snapshot);
    assert_eq!(chunk_bytes(&r).expect("size"), DEFAULT_CHUNK_BYTES);
}

#[test]
fn a_refresh_needs_a_target_and_refuses_what_it_cannot_honour() {
    let r = parse_request(
        br#"{"source_secret":"a","target_secret":"b","mode":"refresh"}"#,
        &settings(),
    )
    .expect("accepted");
    assert_eq!(r.mode, Mode::Refresh);
    let no_target = refused(r#"{"source_secret":"a","mode":"refresh"}"#);
    assert!(no_target.contains("target_secret") && no_target.contains("\"refresh\""));
    for (extra, field) in [
        (r#""atomic":true"#, "setting atomic:"),
        (r#""create_schema":true"#, "setting create_schema:"),
        (r#""backup":true"#, "setting backup:"),
    ] {
        let body =
            format!(r#"{{"source_secret":"a","target_secret":"b","mode":"refresh",{extra}}}"#);
        let e = refused(&body);
        assert!(
            e.starts_with(field) && e.contains("mode \"refresh\""),
            "{e}"
        );
    }
    assert!(
        refused(r#"{"from":"j1","target_secret":"b","mode":"refresh"}"#).contains("live source")
    );
}

#[test]
fn bad_bodies_get_a_400_that_names_the_problem() {
    assert!(refused("").contains("empty"));
    assert!(refused("{not json").contains("not a valid sync request"));
    assert!(
        refused(r#"{"source_secret":"a","target_secret":"b","chunk_sise":1}"#)
            .contains("unknown field `chunk_sise`")
    );
    assert!(refused(r#"{"source_secret":"a"}"#).contains("target_secret"));
    assert!(
        refused(r#"{"source_secret":"a","mode":"export","atomic":true}"#).contains("export-only")
    );
    assert!(refused(r#"{"source_secret":"a","target_secret":"a"}"#).contains("same database"));
    assert!(
        refused(r#"{"source_secret":"a","target_secret":"b","concurrency":9}"#).contains("1 to 8")
    );
    assert!(
        refused(r#"{"source_secret":"a","target_secret":"b","chunk_size":"lots"}"#)
            .contains("chunk_size")
    );
    assert!(
        refused(r#"{"source_secret":"a","target_secret":"b","mode":"mirror"}"#).contains("mode")
    );
    assert!(
        refused(r#"{"source_secret":"a","target_secret":"b","tables":["a.b.c"]}"#)
            .contains("more than one dot")
    );
    assert!(
        refused(r#"{"source_secret":"a","target_secret":"b","snapshot_window_seconds":3600}"#)
            .contains("840")
    );
    let big = format!(
        r#"{{"source_secret":"a","target_secret":"b","tables":["{}"]}}"#,
        "t".repeat(MAX_BODY_BYTES)
    );
    assert!(refused(&big).contains("limit"));
}

#[test]
fn an_export_needs_no_target_and_refuses_one() {
    let r =
        parse_request(br#"{"source_secret":"a","mode":"export"}"#, &settings()).expect("export");
    assert_eq!(r.mode, Mode::Export);
    assert!(
        refused(r#"{"source_secret":"a","target_secret":"b","mode":"export"}"#)
            .contains("not used")
    );
}

#[test]
fn a_load_from_an_export_names_its_target_and_leaves_what_the_export_decided_out() {
    let r = parse_request(
        br#"{"from":"j1","target_secret":"staging/db"}"#,
        &settings(),
    )
    .expect("from");
    assert_eq!(
        (r.from.as_deref(), r.source_secret.as_str()),
        (Some("j1"), "")
    );
    let m = refused(r#"{"from":"j1","target_secret":"b","tables":["t"]}"#);
    assert!(
        m.contains("tables") && m.contains("decided by the export j1"),
        "{m}"
    );
    assert!(
        refused(r#"{"from":"j1","target_secret":"b","source_secret":"a"}"#)
            .contains("source_secret")
    );
    assert!(refused(r#"{"from":"j1","mode":"export"}"#).contains("mode"));
    let backup = parse_request(
        br#"{"from":"j1","target_secret":"b","backup":true}"#,
        &settings(),
    )
    .expect("a load from an export may back its target up");
    assert!(backup.backup);
    assert!(refused(r#"{"source_secret":"a","mode":"export","backup":true}"#).contains("backup"));
    assert!(
        refused(r#"{"source_secret":"a","target_secret":"b","atomic":true,"backup":true}"#)
            .contains("atomic")
    );
    assert!(refused(r#"{"from":"j1"}"#).contains("target_secret"));
    assert!(refused(r#"{"from":" ","target_secret":"b"}"#).contains("from"));
    assert!(refused(r#"{"target_secret":"b"}"#).contains("source_secret"));
}

#[test]
fn an_event_is_either_an_api_request_or_a_schedule_input() {
    let api: ApiEvent =
        serde_json::from_str(include_str!("../../../../../events/api-post-sync.json"))
            .expect("api");
    assert!(matches!(api, ApiEvent::Http(_)));
    let s: ApiEvent = serde_json::from_str(include_str!("../../../../../events/schedule.json"))
        .expect("schedule");
    assert!(matches!(s, ApiEvent::Schedule(_)));
    assert!(serde_json::from_str::<ApiEvent>(r#"{"hello":1}"#).is_err());
}
