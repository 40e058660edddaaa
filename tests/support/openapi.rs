//! `docs/openapi.yaml` as the tests use it: finding the operation of a concrete request and
//! checking a JSON body against a schema of the document. The checker knows the keywords the
//! document uses (type, properties, required, additionalProperties, items, enum, oneOf,
//! minimum, maximum, $ref) and refuses any other, so the document cannot say something the
//! tests silently ignore.

use serde_json::Value;

/// The document, as JSON.
pub fn spec() -> Value {
    serde_yaml::from_str(include_str!("../../docs/openapi.yaml"))
        .expect("docs/openapi.yaml is YAML")
}

/// Keywords that only annotate.
const ANNOTATIONS: &[&str] = &["description", "default", "summary", "example", "format"];

/// The path template of the document that `path` matches (`/syncs/abc` → `/syncs/{id}`).
pub fn template_of(spec: &Value, path: &str) -> Option<String> {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    spec["paths"].as_object()?.keys().find_map(|t| {
        let ts: Vec<&str> = t.split('/').filter(|s| !s.is_empty()).collect();
        let fits = ts.len() == segments.len()
            && ts
                .iter()
                .zip(&segments)
                .all(|(t, s)| (t.starts_with('{') && t.ends_with('}')) || t == s);
        fits.then(|| t.clone())
    })
}

fn resolve<'a>(spec: &'a Value, v: &'a Value) -> &'a Value {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let pointer = r.trim_start_matches('#');
            resolve(
                spec,
                spec.pointer(pointer).unwrap_or_else(|| panic!("no {r}")),
            )
        }
        None => v,
    }
}

/// The schema of the answer `status` of `method path`; panics naming what the document
/// lacks.
pub fn response_schema(spec: &Value, method: &str, path: &str, status: u16) -> Value {
    let t =
        template_of(spec, path).unwrap_or_else(|| panic!("no path of the document matches {path}"));
    let op = &spec["paths"][&t][method.to_ascii_lowercase()];
    assert!(op.is_object(), "the document has no {method} {t}");
    let response = resolve(spec, &op["responses"][status.to_string()]);
    assert!(
        response.is_object(),
        "the document gives {method} {t} no {status} answer"
    );
    response["content"]["application/json"]["schema"].clone()
}

/// The schema of `method path`'s request body.
pub fn request_schema(spec: &Value, method: &str, path: &str) -> Value {
    let t =
        template_of(spec, path).unwrap_or_else(|| panic!("no path of the document matches {path}"));
    spec["paths"][&t][method.to_ascii_lowercase()]["requestBody"]["content"]["application/json"]
        ["schema"]
        .clone()
}

fn type_matches(t: &str, v: &Value) -> bool {
    match t {
        "null" => v.is_null(),
        "boolean" => v.is_boolean(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "string" => v.is_string(),
        "array" => v.is_array(),
        "object" => v.is_object(),
        other => panic!("unknown type {other} in the document"),
    }
}

/// The places where `v` breaks `schema`, as `path: problem` lines (empty: it conforms).
pub fn violations(spec: &Value, schema: &Value, v: &Value, at: &str) -> Vec<String> {
    let schema = resolve(spec, schema);
    let Some(s) = schema.as_object() else {
        return vec![format!("{at}: the schema is not an object")];
    };
    let mut out = Vec::new();
    for (k, rule) in s {
        match k.as_str() {
            "type" => {
                let types: Vec<&str> = match rule {
                    Value::String(t) => vec![t.as_str()],
                    Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
                    _ => panic!("{at}: a type is a string or a list"),
                };
                if !types.iter().any(|t| type_matches(t, v)) {
                    out.push(format!("{at}: {v} is not of type {types:?}"));
                }
            }
            "enum" => {
                if !rule.as_array().is_some_and(|a| a.contains(v)) {
                    out.push(format!("{at}: {v} is not one of {rule}"));
                }
            }
            "minimum" | "maximum" => {
                if let (Some(n), Some(bound)) = (v.as_f64(), rule.as_f64()) {
                    let ok = if k == "minimum" {
                        n >= bound
                    } else {
                        n <= bound
                    };
                    if !ok {
                        out.push(format!("{at}: {n} is beyond the {k} {bound}"));
                    }
                }
            }
            "required" => {
                for r in rule
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                {
                    if v.is_object() && v.get(r).is_none() {
                        out.push(format!("{at}: {r} is missing"));
                    }
                }
            }
            "properties" | "additionalProperties" => {
                if let Some(obj) = v.as_object() {
                    out.extend(object_violations(spec, s, obj, at, k));
                }
            }
            "items" => {
                for (i, item) in v.as_array().into_iter().flatten().enumerate() {
                    out.extend(violations(spec, rule, item, &format!("{at}[{i}]")));
                }
            }
            "oneOf" => {
                let fits = rule
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|alt| violations(spec, alt, v, at).is_empty())
                    .count();
                if fits != 1 {
                    out.push(format!("{at}: {v} fits {fits} of the oneOf alternatives"));
                }
            }
            k if ANNOTATIONS.contains(&k) => {}
            other => panic!("{at}: the checker does not know the keyword {other}"),
        }
    }
    out
}

/// Properties of an object: each checked against its schema (once, under `properties`), and
/// extra ones refused when `additionalProperties` is false.
fn object_violations(
    spec: &Value,
    s: &serde_json::Map<String, Value>,
    obj: &serde_json::Map<String, Value>,
    at: &str,
    keyword: &str,
) -> Vec<String> {
    let props = s.get("properties").and_then(Value::as_object);
    let mut out = Vec::new();
    for (name, value) in obj {
        match props.and_then(|p| p.get(name)) {
            Some(schema) if keyword == "properties" => {
                out.extend(violations(spec, schema, value, &format!("{at}.{name}")));
            }
            None if keyword == "additionalProperties" && s[keyword] == Value::Bool(false) => {
                out.push(format!("{at}: {name} is not in the document"));
            }
            _ => {}
        }
    }
    out
}

/// Whether the document has an operation for `method path`.
pub fn has_operation(spec: &Value, method: &str, path: &str) -> bool {
    template_of(spec, path)
        .is_some_and(|t| spec["paths"][&t][method.to_ascii_lowercase()].is_object())
}

/// Panics unless `body`, the answer `status` to `method path`, conforms to the document; a
/// route the document does not have must be refused (404 or 405) with an error body.
pub fn assert_answer(method: &str, path: &str, status: u16, body: &Value) {
    let spec = spec();
    let schema = if has_operation(&spec, method, path) {
        response_schema(&spec, method, path, status)
    } else {
        assert!(
            matches!(status, 404 | 405),
            "{method} {path} is not in the document, yet answered {status}"
        );
        serde_json::json!({ "$ref": "#/components/schemas/Error" })
    };
    let found = violations(&spec, &schema, body, "$");
    assert!(
        found.is_empty(),
        "the answer {status} to {method} {path} breaks docs/openapi.yaml:\n{}\n{body}",
        found.join("\n")
    );
}

/// Panics unless `body`, sent to `method path`, conforms to the document.
pub fn assert_request(method: &str, path: &str, body: &Value) {
    let spec = spec();
    let schema = request_schema(&spec, method, path);
    let found = violations(&spec, &schema, body, "$");
    assert!(
        found.is_empty(),
        "the request {method} {path} breaks docs/openapi.yaml:\n{}\n{body}",
        found.join("\n")
    );
}
