//! openapi.yaml and schema/ tell one story, and it is the one Quill routes: every schema file is
//! a valid draft 2020-12 schema with its `$schema`/`$id`; each `components.schemas.<Name>` equals
//! its file minus those two keys; every CSC v2 method Quill serves is a path with exactly a POST
//! whose request and 200 bodies reference the right components (or a 204 without one), and whose
//! errors are the `Error` schema; every OAuth 2.0 endpoint is a path with the methods it is
//! routed for, form bodies, its success and error answers (JSON or the page's HTML) and client
//! authentication as served; every `$ref` resolves; the operations endpoints stay outside.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "api/schemas.rs"]
mod schemas;

use std::collections::BTreeSet;

use serde_json::Value;

const DIALECT: &str = "https://json-schema.org/draft/2020-12/schema";
const ID_BASE: &str = "https://quill.invalid/schema/";

fn openapi() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.yaml");
    let text = std::fs::read_to_string(path).unwrap();
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("openapi.yaml: {e}"))
}

/// `credentials-extendTransaction.request.json` → `CredentialsExtendTransactionRequest`
/// (the rule `.ci/openapi-components` follows).
fn component_name(file: &str) -> String {
    file.trim_end_matches(".json")
        .split(['-', '.', '/'])
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut chars = p.chars();
            let first = chars.next().unwrap().to_ascii_uppercase();
            std::iter::once(first).chain(chars).collect::<String>()
        })
        .collect()
}

/// The CSC v2 methods Quill routes (v1-only `credentials/sendOTP` aside).
fn v2_methods() -> Vec<&'static str> {
    quill::api::METHODS
        .iter()
        .copied()
        .filter(|m| *m != "credentials/sendOTP")
        .collect()
}

/// Follow a local `$ref` (`#/a/b`) in `doc`.
fn resolve<'a>(doc: &'a Value, reference: &str) -> Option<&'a Value> {
    doc.pointer(reference.strip_prefix('#')?)
}

fn ref_of(v: &Value) -> Option<&str> {
    v.get("$ref").and_then(Value::as_str)
}

#[test]
fn every_schema_file_is_a_valid_2020_12_schema() {
    let on_disk: BTreeSet<String> = std::fs::read_dir(schemas::DIR)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".json"))
        .collect();
    for file in schemas::FILES {
        assert!(on_disk.contains(*file), "schema/{file} is missing");
    }
    assert_eq!(schemas::SCHEMAS.len(), on_disk.len());
    for (file, schema) in schemas::SCHEMAS.iter() {
        let json = &schema.json;
        assert_eq!(json["$schema"], DIALECT, "{file}: $schema");
        assert_eq!(json["$id"], format!("{ID_BASE}{file}"), "{file}: $id");
        if let Err(e) = jsonschema::draft202012::meta::validate(json) {
            panic!("{file}: not a valid draft 2020-12 schema: {e}");
        }
        assert_eq!(json["type"], "object", "{file}: bodies are JSON objects");
        let text = json.to_string();
        assert!(
            !text.contains("\"$ref\""),
            "{file}: schemas are self-contained (no $ref)"
        );
        // Requests tolerate unknown fields (CSC clients send other versions' fields); responses
        // list every field they may carry.
        if file.ends_with(".request.json") {
            assert!(
                !text.contains("\"additionalProperties\":false"),
                "{file}: requests must accept unknown fields"
            );
        } else {
            assert_eq!(json["additionalProperties"], false, "{file}");
            // Something is required: at the top, or in each of the shapes it may take.
            let requires = |v: &Value| v["required"].as_array().is_some_and(|r| !r.is_empty());
            assert!(
                requires(json)
                    || json["oneOf"]
                        .as_array()
                        .is_some_and(|shapes| shapes.iter().all(requires)),
                "{file}: nothing required"
            );
        }
        // Every required property is described (at the top, or in the shape requiring it).
        let shapes = json["oneOf"].as_array().into_iter().flatten();
        for shape in std::iter::once(json).chain(shapes) {
            for name in shape["required"].as_array().into_iter().flatten() {
                let name = name.as_str().unwrap();
                assert!(
                    json["properties"].get(name).is_some()
                        || shape["properties"].get(name).is_some(),
                    "{file}: required {name} has no property schema"
                );
            }
        }
    }
}

#[test]
fn components_equal_the_schema_files() {
    let doc = openapi();
    let components = doc["components"]["schemas"].as_object().unwrap();
    let mut expected = BTreeSet::new();
    for (file, schema) in schemas::SCHEMAS.iter() {
        let name = component_name(file);
        let mut want = schema.json.clone();
        let obj = want.as_object_mut().unwrap();
        obj.remove("$schema");
        obj.remove("$id");
        let got = components
            .get(&name)
            .unwrap_or_else(|| panic!("openapi.yaml has no components.schemas.{name} for {file}"));
        assert_eq!(
            got, &want,
            "components.schemas.{name} differs from schema/{file}: run `python3 .ci/openapi-components`"
        );
        expected.insert(name);
    }
    let actual: BTreeSet<String> = components.keys().cloned().collect();
    assert_eq!(
        actual, expected,
        "component schemas without a schema/ file (or the reverse)"
    );
}

/// `/healthz`, `/readyz` and `/metrics` are operations endpoints, not CSC methods: they stay out
/// of `/csc/…` and out of openapi.yaml (which describes, and Schemathesis fuzzes, the CSC API).
#[test]
fn ops_endpoints_stay_outside_the_csc_api() {
    let doc = openapi();
    let paths = doc["paths"].as_object().unwrap();
    assert_eq!(quill::api::OPS_PATHS, ["/healthz", "/readyz", "/metrics"]);
    for p in quill::api::OPS_PATHS {
        assert!(!p.starts_with("/csc/"), "{p}");
        assert!(!paths.contains_key(*p), "{p} is in openapi.yaml");
        assert!(!quill::api::METHODS.iter().any(|m| p.ends_with(m)), "{p}");
    }
}

#[test]
fn paths_are_the_methods_quill_routes() {
    let doc = openapi();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["jsonSchemaDialect"], DIALECT);
    let paths = doc["paths"].as_object().unwrap();
    let want: BTreeSet<String> = v2_methods()
        .iter()
        .map(|m| format!("/csc/v2/{m}"))
        .chain(quill::api::OAUTH_PATHS.iter().map(|p| p.to_string()))
        .collect();
    let got: BTreeSet<String> = paths.keys().cloned().collect();
    assert_eq!(
        got, want,
        "openapi.yaml paths vs quill::api::METHODS and OAUTH_PATHS"
    );

    let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
    assert_eq!(schemes["basicAuth"]["scheme"], "basic");
    assert_eq!(schemes["bearerAuth"]["scheme"], "bearer");
    assert_eq!(doc["security"], serde_json::json!([{"bearerAuth": []}]));

    for method in v2_methods() {
        let path = format!("/csc/v2/{method}");
        let item = paths[&path].as_object().unwrap();
        let verbs: Vec<&String> = item.keys().collect();
        assert_eq!(verbs, ["post"], "{path}: CSC methods are POST only");
        let op = &item["post"];
        let stem = schemas::stem(method);

        // Security: none for info, Basic for auth/login, the global bearer scheme elsewhere.
        match method {
            "info" => assert_eq!(op["security"], serde_json::json!([]), "{path}"),
            "auth/login" => assert_eq!(
                op["security"],
                serde_json::json!([{"basicAuth": []}]),
                "{path}"
            ),
            _ => assert!(op.get("security").is_none(), "{path}: bearer (global)"),
        }

        // Request body.
        let request = &op["requestBody"]["content"]["application/json"]["schema"];
        assert_eq!(
            ref_of(request),
            Some(
                format!(
                    "#/components/schemas/{}",
                    component_name(&format!("{stem}.request.json"))
                )
                .as_str()
            ),
            "{path}: request body"
        );
        let examples = op["requestBody"]["content"]["application/json"]["examples"]
            .as_object()
            .unwrap_or_else(|| panic!("{path}: no request examples"));
        for (name, example) in examples {
            if let Err(why) = schemas::validate(&format!("{stem}.request.json"), &example["value"])
            {
                panic!("{path}: example {name} breaks its schema: {why}");
            }
        }
        // A field is required outright, or by every branch of an anyOf / oneOf (signDoc:
        // credentialID or signatureQualifier; documentDigests or documents).
        let schema = &schemas::schema(&format!("{stem}.request.json"))
            .unwrap()
            .json;
        let every_branch_requires = |key: &str| {
            schema[key].as_array().is_some_and(|branches| {
                branches.iter().all(|b| {
                    b["required"]
                        .as_array()
                        .is_some_and(|fields| !fields.is_empty())
                })
            })
        };
        let required_fields = schema.get("required").is_some()
            || every_branch_requires("anyOf")
            || every_branch_requires("oneOf");
        assert_eq!(
            op["requestBody"]["required"],
            Value::Bool(required_fields),
            "{path}: requestBody.required iff the body has required fields (a blank body is {{}})"
        );

        // Success: 200 with the response schema, or 204 without a body.
        let responses = op["responses"].as_object().unwrap();
        let response_file = format!("{stem}.response.json");
        if schemas::schema(&response_file).is_some() {
            let schema = &responses["200"]["content"]["application/json"]["schema"];
            assert_eq!(
                ref_of(schema),
                Some(format!("#/components/schemas/{}", component_name(&response_file)).as_str()),
                "{path}: 200 body"
            );
            assert!(!responses.contains_key("204"), "{path}");
        } else {
            assert!(
                !responses.contains_key("200"),
                "{path}: no schema/{response_file}"
            );
            assert!(
                responses["204"].get("content").is_none(),
                "{path}: 204 has no body"
            );
        }

        // Errors: every one a CSC error body; the statuses every method can produce are there.
        let mut must = vec!["400", "413"];
        if method != "info" {
            must.extend(["401", "500", "503"]);
        }
        for status in must {
            assert!(responses.contains_key(status), "{path}: no {status}");
        }
        for (status, response) in responses {
            if status.starts_with('2') {
                continue;
            }
            let response = match ref_of(response) {
                Some(r) => resolve(&doc, r).unwrap_or_else(|| panic!("{path} {status}: {r}")),
                None => response,
            };
            let schema = &response["content"]["application/json"]["schema"];
            let is_error = ref_of(schema) == Some("#/components/schemas/Error")
                || schema["allOf"].as_array().is_some_and(|all| {
                    all.iter()
                        .any(|s| ref_of(s) == Some("#/components/schemas/Error"))
                });
            assert!(is_error, "{path} {status}: not the Error schema");
        }
        if method != "info" && method != "auth/login" {
            let unauthorized = resolve(&doc, ref_of(&responses["401"]).unwrap()).unwrap();
            assert!(
                unauthorized["headers"].get("WWW-Authenticate").is_some(),
                "{path}: 401 documents WWW-Authenticate"
            );
        }
    }
}

#[test]
fn every_ref_resolves_and_error_refinements_compile() {
    fn walk<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
        match v {
            Value::Object(map) => {
                if let Some(r) = map.get("$ref").and_then(Value::as_str) {
                    out.push(r);
                }
                map.values().for_each(|v| walk(v, out));
            }
            Value::Array(items) => items.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let doc = openapi();
    let mut refs = Vec::new();
    walk(&doc, &mut refs);
    assert!(!refs.is_empty());
    for r in refs {
        assert!(resolve(&doc, r).is_some(), "unresolved $ref {r}");
    }
    // The per-status error schemas (allOf Error + a narrower `error`) are valid schemas; the
    // other shared responses are the authorization page's HTML.
    let error = &schemas::schema("error.json").unwrap().json;
    for (name, response) in doc["components"]["responses"].as_object().unwrap() {
        if response["content"].get("application/json").is_none() {
            assert_eq!(
                response["content"]["text/html"]["schema"]["type"], "string",
                "responses.{name}: neither an Error nor an HTML page"
            );
            continue;
        }
        let mut schema = response["content"]["application/json"]["schema"].clone();
        let inlined = serde_json::json!({"allOf": [error, schema["allOf"][1].take()]});
        schemas::compile(&inlined).unwrap_or_else(|e| panic!("responses.{name}: {e}"));
    }
}

/// The response `status` of `op`, through a `$ref` to `components.responses` if it is one.
fn response<'a>(doc: &'a Value, op: &'a Value, status: &str) -> &'a Value {
    let r = &op["responses"][status];
    match ref_of(r) {
        Some(reference) => resolve(doc, reference).unwrap_or_else(|| panic!("{reference}")),
        None => r,
    }
}

/// A header a response documents, through a `$ref` to `components.headers` if it is one.
fn header<'a>(doc: &'a Value, response: &'a Value, name: &str) -> &'a Value {
    let h = &response["headers"][name];
    match ref_of(h) {
        Some(reference) => resolve(doc, reference).unwrap_or_else(|| panic!("{reference}")),
        None => h,
    }
}

fn is_error_schema(schema: &Value) -> bool {
    ref_of(schema) == Some("#/components/schemas/Error")
        || schema["allOf"].as_array().is_some_and(|all| {
            all.iter()
                .any(|s| ref_of(s) == Some("#/components/schemas/Error"))
        })
}

#[test]
fn oauth_endpoints_are_described_as_served() {
    use quill::api::{
        OAUTH_AUTHORIZE, OAUTH_METADATA, OAUTH_PATHS, OAUTH_PUSHED_AUTHORIZE, OAUTH_REVOKE,
        OAUTH_TOKEN,
    };
    let doc = openapi();
    let paths = doc["paths"].as_object().unwrap();
    let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
    assert_eq!(schemes["clientBasic"]["type"], "http");
    assert_eq!(schemes["clientBasic"]["scheme"], "basic");
    let form = "application/x-www-form-urlencoded";

    for path in OAUTH_PATHS {
        assert!(!path.starts_with("/csc/"), "{path}");
        let verbs: Vec<&str> = paths[*path]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let want: &[&str] = match *path {
            OAUTH_AUTHORIZE => &["get", "post"],
            OAUTH_METADATA => &["get"],
            _ => &["post"],
        };
        assert_eq!(verbs, want, "{path}: the methods it is routed for");
    }

    // The JSON endpoints: a form (client authentication optional in the header: public and
    // client_secret_post clients send none), a JSON success and JSON errors.
    for (path, success, response_file) in [
        (OAUTH_TOKEN, "200", Some("oauth2-token.response.json")),
        (
            OAUTH_PUSHED_AUTHORIZE,
            "201",
            Some("oauth2-pushedAuthorize.response.json"),
        ),
        (OAUTH_REVOKE, "204", None),
    ] {
        let op = &paths[path]["post"];
        let stem = schemas::oauth_stem(path).unwrap();
        assert_eq!(
            op["security"],
            serde_json::json!([{"clientBasic": []}, {}]),
            "{path}"
        );
        assert_eq!(op["requestBody"]["required"], true, "{path}");
        let content = op["requestBody"]["content"].as_object().unwrap();
        assert_eq!(content.keys().collect::<Vec<_>>(), [form], "{path}");
        let request_file = format!("{stem}.request.json");
        assert_eq!(
            ref_of(&content[form]["schema"]),
            Some(format!("#/components/schemas/{}", component_name(&request_file)).as_str()),
            "{path}: request body"
        );
        let examples = content[form]["examples"]
            .as_object()
            .unwrap_or_else(|| panic!("{path}: no request examples"));
        for (name, example) in examples {
            if let Err(why) = schemas::validate(&request_file, &example["value"]) {
                panic!("{path}: example {name} breaks {request_file}: {why}");
            }
        }
        let responses = op["responses"].as_object().unwrap();
        let successes: Vec<&String> = responses.keys().filter(|s| s.starts_with('2')).collect();
        assert_eq!(successes, [success], "{path}");
        let ok = &responses[success];
        match response_file {
            Some(file) => {
                assert_eq!(
                    ref_of(&ok["content"]["application/json"]["schema"]),
                    Some(format!("#/components/schemas/{}", component_name(file)).as_str()),
                    "{path}: {success} body"
                );
                assert_eq!(
                    header(&doc, ok, "Cache-Control")["schema"]["const"],
                    "no-store"
                );
            }
            None => assert!(ok.get("content").is_none(), "{path}: 204 has no body"),
        }
        for status in ["400", "401", "413", "500", "503"] {
            assert!(responses.contains_key(status), "{path}: no {status}");
        }
        for status in responses.keys().filter(|s| !s.starts_with('2')) {
            let r = response(&doc, op, status);
            assert!(
                is_error_schema(&r["content"]["application/json"]["schema"]),
                "{path} {status}: not the Error schema"
            );
        }
        let unauthorized = response(&doc, op, "401");
        assert_eq!(
            header(&doc, unauthorized, "WWW-Authenticate")["schema"]["const"],
            "Basic realm=\"quill\"",
            "{path}"
        );
    }

    // The metadata document.
    let op = &paths[OAUTH_METADATA]["get"];
    assert_eq!(op["security"], serde_json::json!([]));
    assert_eq!(
        ref_of(&op["responses"]["200"]["content"]["application/json"]["schema"]),
        Some("#/components/schemas/Oauth2MetadataResponse")
    );

    // The page: opened with GET, its form posted back; HTML, or a redirect to the client.
    for verb in ["get", "post"] {
        let op = &paths[OAUTH_AUTHORIZE][verb];
        assert_eq!(op["security"], serde_json::json!([]), "authorize {verb}");
        let responses = op["responses"].as_object().unwrap();
        let page = response(&doc, op, "200");
        assert_eq!(page["content"]["text/html"]["schema"]["type"], "string");
        assert_eq!(header(&doc, page, "Set-Cookie")["required"], true);
        let redirect = response(&doc, op, "302");
        let location = header(&doc, redirect, "Location");
        assert_eq!(location["required"], true, "authorize {verb}");
        for status in responses
            .keys()
            .filter(|s| s.starts_with('4') || s.starts_with('5'))
        {
            let r = response(&doc, op, status);
            let content = r["content"].as_object().unwrap();
            assert_eq!(
                content.keys().collect::<Vec<_>>(),
                ["text/html"],
                "authorize {verb} {status}: the signer sees a page"
            );
        }
        assert!(responses.contains_key("400"), "authorize {verb}");
    }
    let submit = &paths[OAUTH_AUTHORIZE]["post"];
    assert_eq!(
        ref_of(&submit["requestBody"]["content"][form]["schema"]),
        Some("#/components/schemas/Oauth2AuthorizeRequest")
    );
    for (name, example) in submit["requestBody"]["content"][form]["examples"]
        .as_object()
        .unwrap()
    {
        schemas::validate("oauth2-authorize.request.json", &example["value"])
            .unwrap_or_else(|why| panic!("authorize form example {name}: {why}"));
    }

    // GET's query parameters are PAR's form fields (the same checks run on both), plus
    // client_id (required) and request_uri.
    let par = &schemas::schema("oauth2-pushedAuthorize.request.json")
        .unwrap()
        .json["properties"];
    let params = paths[OAUTH_AUTHORIZE]["get"]["parameters"]
        .as_array()
        .unwrap();
    let mut names = BTreeSet::new();
    for p in params {
        let name = p["name"].as_str().unwrap();
        assert_eq!(p["in"], "query", "{name}");
        assert_eq!(
            p.get("required").and_then(Value::as_bool).unwrap_or(false),
            name == "client_id",
            "{name}: only client_id is required (request_uri replaces the rest)"
        );
        names.insert(name.to_string());
        if name == "client_id" || name == "request_uri" {
            continue;
        }
        let mut want = par
            .get(name)
            .unwrap_or_else(|| panic!("query parameter {name} is not a PAR field"))
            .clone();
        let want = want.as_object_mut().unwrap();
        assert_eq!(p["description"], want["description"], "{name}");
        want.remove("description");
        want.remove("contentMediaType");
        if want.contains_key("enum") && !want.contains_key("type") {
            want.insert("type".into(), "string".into());
        }
        assert_eq!(&p["schema"], &Value::Object(want.clone()), "{name}");
    }
    let fields: BTreeSet<String> = par
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| *k != "client_secret")
        .cloned()
        .chain(["request_uri".to_string()])
        .collect();
    assert_eq!(
        names, fields,
        "GET /oauth2/authorize parameters vs PAR fields"
    );
}
