//! The official CDI JSON schema, embedded, and validation against it.

use serde_json::Value;

const SCHEMA: &str = include_str!("../schema/schema.json");
const DEFS: &str = include_str!("../schema/defs.json");

/// The embedded schema, broken: a build defect, reported rather than panicked on.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("the embedded CDI schema file {file} is not JSON: {source}")]
    NotJson {
        file: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("the embedded CDI schema file defs.json is not a schema resource: {0}")]
    Defs(#[source] jsonschema::ReferencingError),
    #[error("the embedded CDI schema does not compile: {0}")]
    Compile(#[source] Box<jsonschema::ValidationError<'static>>),
}

fn parse(file: &'static str, text: &str) -> Result<Value, SchemaError> {
    serde_json::from_str(text).map_err(|source| SchemaError::NotJson { file, source })
}

/// Every way in which `doc` breaks the schema, as `path: message` lines.
pub fn violations(doc: &Value) -> Result<Vec<String>, SchemaError> {
    let schema = parse("schema.json", SCHEMA)?;
    let defs = parse("defs.json", DEFS)?;
    let validator = jsonschema::options()
        .with_resource(
            "json-schema:///defs.json",
            jsonschema::Resource::from_contents(defs).map_err(SchemaError::Defs)?,
        )
        .build(&schema)
        .map_err(|e| SchemaError::Compile(Box::new(e)))?;
    Ok(validator
        .iter_errors(doc)
        .map(|e| {
            let at = e.instance_path.to_string();
            if at.is_empty() {
                e.to_string()
            } else {
                format!("{at}: {e}")
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_good_rejects_bad() {
        let good = serde_json::json!({"cdiVersion": "0.5.0", "kind": "amd.com/gpu",
            "devices": [{"name": "0", "containerEdits": {"deviceNodes": [{"path": "/dev/kfd"}]}}]});
        assert_eq!(violations(&good).unwrap(), Vec::<String>::new());
        let bad = serde_json::json!({"kind": "amd.com/gpu",
            "devices": [{"name": "0", "containerEdits": {"deviceNodes": [{"major": "x"}]}}]});
        let v = violations(&bad).unwrap();
        assert!(v.iter().any(|m| m.contains("cdiVersion")), "{v:?}");
        assert!(v.iter().any(|m| m.contains("path")), "{v:?}");
    }
}
