//! What `sam deploy` ships, checked against the code: the state machine's error names are the
//! core's stable names, its `${...}` substitutions are exactly the template's and name real
//! resources, the fields its states read exist in the execution input, and every function the
//! template builds is a binary of the workspace. (cfn-lint, `sam validate --lint` and
//! asl-validator run in scripts/validate.sh.)

use dbsync_core::cloud::api::ExecutionInput;
use dbsync_core::Error;
use serde_json::Value;
use std::collections::BTreeSet;

const ASL: &str = include_str!("../../statemachine/sync.asl.json");
const TEMPLATE: &str = include_str!("../../template.yaml");

fn walk<'a>(v: &'a Value, f: &mut dyn FnMut(&'a serde_json::Map<String, Value>)) {
    match v {
        Value::Object(m) => {
            f(m);
            m.values().for_each(|x| walk(x, f));
        }
        Value::Array(a) => a.iter().for_each(|x| walk(x, f)),
        _ => {}
    }
}

fn asl() -> Value {
    serde_json::from_str(ASL).expect("the state machine is JSON")
}

#[test]
fn every_error_name_the_state_machine_matches_is_one_the_code_raises() {
    let asl = asl();
    let mut names = BTreeSet::new();
    walk(&asl, &mut |m| {
        if let Some(Value::Array(errs)) = m.get("ErrorEquals") {
            names.extend(errs.iter().filter_map(|e| e.as_str()));
        }
    });
    assert!(!names.is_empty());
    for n in &names {
        assert!(
            Error::names().any(|k| k == *n) || n.starts_with("States.") || n.starts_with("Lambda."),
            "{n} is matched by the state machine but no error of the core has that name"
        );
    }
}

#[test]
fn the_state_machine_retries_exactly_the_errors_the_core_calls_retryable() {
    let asl = asl();
    let mut retried = BTreeSet::new();
    walk(&asl, &mut |m| {
        for r in m
            .get("Retry")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(Value::Array(errs)) = r.get("ErrorEquals") {
                retried.extend(
                    errs.iter()
                        .filter_map(|e| e.as_str())
                        .filter(|n| n.starts_with("Dbsync")),
                );
            }
        }
    });
    let retryable: BTreeSet<&str> = Error::KINDS
        .iter()
        .filter(|(_, retry)| *retry)
        .map(|(name, _)| *name)
        .collect();
    assert_eq!(
        retried, retryable,
        "the state machine's Retry blocks against Error::KINDS' retryable names"
    );
}

#[test]
fn every_substitution_is_defined_by_the_template_and_names_a_resource() {
    let used: BTreeSet<String> = ASL
        .split("${")
        .skip(1)
        .filter_map(|s| s.split_once('}').map(|(name, _)| name.to_string()))
        .collect();
    let block = TEMPLATE
        .split("DefinitionSubstitutions:\n")
        .nth(1)
        .expect("the template has DefinitionSubstitutions");
    let mut defined = BTreeSet::new();
    for line in block.lines().take_while(|l| l.starts_with("        ")) {
        let (key, value) = line.trim().split_once(": ").expect("key: value");
        let resource = value
            .trim_start_matches("!GetAtt ")
            .trim_start_matches("!Ref ")
            .split('.')
            .next()
            .unwrap_or_default();
        assert!(
            TEMPLATE.contains(&format!("\n  {resource}:\n    Type: ")),
            "substitution {key} names {resource}, which is not a resource of the template"
        );
        defined.insert(key.to_string());
    }
    assert_eq!(used, defined, "substitutions used vs defined");
}

#[test]
fn every_function_the_template_builds_is_a_workspace_binary_with_a_sample_event() {
    let binaries: Vec<&str> = TEMPLATE
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Binary: "))
        .collect();
    assert_eq!(binaries.len(), 10, "{binaries:?}");
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let workspace = std::fs::read_to_string(format!("{root}/Cargo.toml")).expect("Cargo.toml");
    for b in binaries {
        assert!(
            workspace.contains(&format!("\"functions/{b}\"")),
            "{b} is not a workspace member"
        );
        let sample = if b == "api" {
            "api-post-sync".to_string()
        } else {
            b.to_string()
        };
        assert!(
            std::path::Path::new(&format!("{root}/events/{sample}.json")).exists(),
            "no sample event for {b}"
        );
    }
}

#[test]
fn the_paths_the_state_machine_reads_exist_in_the_execution_input() {
    let sample: Value =
        serde_json::from_str(include_str!("../../events/execution.json")).expect("sample");
    let input: ExecutionInput = serde_json::from_value(sample.clone()).expect("parses");
    assert_eq!(serde_json::to_value(&input).expect("json"), sample);
    // Paths of the execution input that the states read (not those of step outputs).
    let asl = asl();
    let mut paths = BTreeSet::new();
    walk(&asl, &mut |m| {
        for (k, v) in m {
            if let (true, Some(p)) = (k.ends_with(".$") || k.ends_with("Path"), v.as_str()) {
                if let Some(field) = p.strip_prefix("$.") {
                    paths.insert(field.split('.').next().unwrap_or_default().to_string());
                }
            }
        }
    });
    let produced = [
        "plan",
        "assembled",
        "exported",
        "prepared",
        "dump",
        "finalized",
        "wave",
        "wave_index",
        "error",
        "done",
        "released",
        "stagger",
        // The export Map's item (ItemSelector), read by the chunk's Catch path.
        "label",
    ];
    for p in paths {
        assert!(
            sample.get(&p).is_some() || produced.contains(&p.as_str()),
            "the state machine reads $.{p}, which neither the execution input nor a step provides"
        );
    }
}

/// The `(method, path)` of every API event of the template.
fn template_routes() -> BTreeSet<(String, String)> {
    let mut routes = BTreeSet::new();
    let mut path = None;
    for line in TEMPLATE.lines().map(str::trim) {
        if let Some(p) = line.strip_prefix("Path: ") {
            path = Some(p.to_string());
        } else if let (Some(m), Some(p)) = (line.strip_prefix("Method: "), path.take()) {
            routes.insert((m.to_ascii_lowercase(), p));
        }
    }
    routes
}

#[test]
fn the_api_document_has_an_operation_for_every_route_of_the_template_and_no_other() {
    let spec = dbsync_tests::openapi::spec();
    let mut documented = BTreeSet::new();
    for (path, item) in spec["paths"].as_object().expect("paths") {
        for method in ["get", "post", "put", "delete", "patch"] {
            if item.get(method).is_some() {
                documented.insert((method.to_string(), path.clone()));
            }
        }
    }
    assert_eq!(documented, template_routes());
}

#[test]
fn the_sync_request_schema_lists_every_field_a_request_may_hold() {
    use dbsync_core::cloud::api::SyncRequest;
    let spec = dbsync_tests::openapi::spec();
    let schema = &spec["components"]["schemas"]["SyncRequest"]["properties"];
    let documented: BTreeSet<String> = schema
        .as_object()
        .expect("properties")
        .keys()
        .cloned()
        .collect();
    let full: SyncRequest = serde_json::from_value(serde_json::json!({
        "source_secret": "a", "from": "j", "target_secret": "b", "backup": true, "source_connections": 2
    }))
    .expect("request");
    let fields: BTreeSet<String> = serde_json::to_value(&full)
        .expect("json")
        .as_object()
        .expect("object")
        .keys()
        .cloned()
        .collect();
    assert_eq!(fields, documented);
    // The document and the parser agree on a sample request, and the document refuses what
    // the parser refuses.
    let sample: Value = serde_json::from_str(include_str!("../../events/api-post-sync.json"))
        .expect("sample event");
    let body: Value = serde_json::from_str(sample["body"].as_str().expect("body")).expect("json");
    dbsync_tests::openapi::assert_request("POST", "/syncs", &body);
    let schema = dbsync_tests::openapi::request_schema(&spec, "POST", "/syncs");
    let misspelt = serde_json::json!({ "source_secret": "a", "chunk_sise": 1 });
    assert!(!dbsync_tests::openapi::violations(&spec, &schema, &misspelt, "$").is_empty());
}

#[test]
fn the_checker_finds_an_answer_that_breaks_the_document() {
    let spec = dbsync_tests::openapi::spec();
    let schema = dbsync_tests::openapi::response_schema(&spec, "GET", "/syncs/abc", 200);
    let found = dbsync_tests::openapi::violations(
        &spec,
        &schema,
        &serde_json::json!({ "job_id": 7, "surprise": true }),
        "$",
    );
    let text = found.join("\n");
    assert!(
        text.contains("$.job_id: 7 is not of type")
            && text.contains("surprise is not in the document")
            && text.contains("links is missing"),
        "{text}"
    );
}

#[test]
fn the_nightly_schedule_s_input_is_a_request_the_api_accepts_in_each_mode_it_allows() {
    let input = TEMPLATE
        .split("Input: !Sub >-\n")
        .nth(1)
        .expect("the schedule has an input");
    let text: String = input
        .lines()
        .take_while(|l| l.starts_with("              "))
        .collect::<Vec<_>>()
        .join(" ");
    let modes = TEMPLATE
        .split("  ScheduleMode:\n")
        .nth(1)
        .and_then(|b| {
            b.lines()
                .find_map(|l| l.trim().strip_prefix("AllowedValues: "))
        })
        .expect("ScheduleMode's allowed values");
    let settings = dbsync_core::cloud::api::ApiSettings::from_lookup(&|k| match k {
        "DBSYNC_STATE_MACHINE_ARN" => Some("arn:aws:states:eu-west-1:1:stateMachine:s".into()),
        _ => None,
    })
    .expect("settings");
    for mode in modes.trim_matches(['[', ']']).split(", ") {
        let filled = text
            .replace("${AWS::StackName}", "dbsync")
            .replace("${ScheduleSourceSecret}", "dbsync/production")
            .replace("${ScheduleTargetSecret}", "dbsync/staging")
            .replace("${ScheduleConcurrency}", "8")
            .replace("${ScheduleMode}", mode);
        let event: dbsync_core::cloud::api::request::ScheduledSync =
            serde_json::from_str(&filled).unwrap_or_else(|e| panic!("{filled}: {e}"));
        let body = event.request.to_string();
        let req = dbsync_core::cloud::api::request::parse_request(body.as_bytes(), &settings)
            .unwrap_or_else(|e| panic!("mode {mode}: {e}"));
        assert_eq!(req.mode.as_str(), mode);
    }
}
