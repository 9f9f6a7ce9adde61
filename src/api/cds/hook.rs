//! A hook call's body (CDS Hooks 2.0 "HTTP Request"): `hook`, `hookInstance`, `fhirServer`,
//! `fhirAuthorization`, `context` and `prefetch`, checked before anything is read or run. Each
//! refusal names the field at fault.

use serde_json::{Map, Value};

use super::CdsService;
use crate::api::ApiError;
use crate::domain::ResourceId;
use crate::error::ErrorKind;

/// The parts of a hook call the services use.
#[derive(Debug)]
pub struct HookCall {
    pub hook_instance: String,
    pub fhir_server: Option<String>,
    /// `fhirAuthorization.access_token`.
    pub access_token: Option<String>,
    pub patient: ResourceId,
    /// `context.userId` (`Practitioner/123`).
    pub user: Option<String>,
    /// `order-select`: the draft orders selected (all drafts when no selection names them).
    pub selected_orders: Vec<Value>,
    pub prefetch: Option<Map<String, Value>>,
}

fn invalid(at: &str, message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorKind::Invalid, message).at(at.to_owned())
}

fn text<'a>(
    object: &'a Map<String, Value>,
    key: &str,
    at: &str,
) -> Result<Option<&'a str>, ApiError> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(invalid(at, format!("{at} must be a string"))),
    }
}

/// Reads and checks a call to `service`.
pub fn parse(body: &[u8], service: &CdsService) -> Result<HookCall, ApiError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            ErrorKind::Invalid,
            format!("the body is not a JSON hook request: {e}"),
        )
    })?;
    let Value::Object(call) = value else {
        return Err(ApiError::new(
            ErrorKind::Invalid,
            "the body must be a JSON object (a CDS Hooks request)",
        ));
    };
    let hook = text(&call, "hook", "hook")?.ok_or_else(|| invalid("hook", "hook is required"))?;
    if hook != service.hook {
        return Err(invalid(
            "hook",
            format!(
                "the service {} answers the {} hook, not {}",
                service.id,
                service.hook,
                hook.chars().take(64).collect::<String>()
            ),
        ));
    }
    let hook_instance = text(&call, "hookInstance", "hookInstance")?
        .filter(|h| !h.trim().is_empty())
        .ok_or_else(|| invalid("hookInstance", "hookInstance is required"))?;
    if hook_instance.len() > 128 {
        return Err(invalid(
            "hookInstance",
            "hookInstance is over 128 characters",
        ));
    }
    let fhir_server = text(&call, "fhirServer", "fhirServer")?;
    if let Some(server) = fhir_server {
        let url = url::Url::parse(server)
            .map_err(|_| invalid("fhirServer", "fhirServer is not a URL"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid("fhirServer", "fhirServer must be an http(s) URL"));
        }
    }
    let access_token = match call.get("fhirAuthorization") {
        None | Some(Value::Null) => None,
        Some(Value::Object(auth)) => {
            if fhir_server.is_none() {
                return Err(invalid(
                    "fhirAuthorization",
                    "fhirAuthorization is given without fhirServer",
                ));
            }
            let token_type = text(auth, "token_type", "fhirAuthorization.token_type")?;
            if !token_type.is_some_and(|t| t.eq_ignore_ascii_case("bearer")) {
                return Err(invalid(
                    "fhirAuthorization.token_type",
                    "fhirAuthorization.token_type must be Bearer",
                ));
            }
            let token = text(auth, "access_token", "fhirAuthorization.access_token")?
                .filter(|t| !t.is_empty())
                .ok_or_else(|| {
                    invalid(
                        "fhirAuthorization.access_token",
                        "fhirAuthorization.access_token is required",
                    )
                })?;
            Some(token.to_owned())
        }
        Some(_) => {
            return Err(invalid(
                "fhirAuthorization",
                "fhirAuthorization must be an object",
            ));
        }
    };
    let Some(Value::Object(context)) = call.get("context") else {
        return Err(invalid("context", "context is required, as an object"));
    };
    let patient = text(context, "patientId", "context.patientId")?
        .ok_or_else(|| invalid("context.patientId", "context.patientId is required"))?;
    let patient = ResourceId::parse(patient.trim_start_matches("Patient/")).map_err(|_| {
        invalid(
            "context.patientId",
            "context.patientId is not a FHIR resource id",
        )
    })?;
    let user = text(context, "userId", "context.userId")?.map(str::to_owned);
    let selected_orders = if service.hook == "order-select" {
        selected_orders(context)?
    } else {
        Vec::new()
    };
    let prefetch = match call.get("prefetch") {
        None | Some(Value::Null) => None,
        Some(Value::Object(p)) => Some(p.clone()),
        Some(_) => return Err(invalid("prefetch", "prefetch must be an object")),
    };
    Ok(HookCall {
        hook_instance: hook_instance.to_owned(),
        fhir_server: fhir_server.map(|s| s.trim_end_matches('/').to_owned()),
        access_token,
        patient,
        user,
        selected_orders,
        prefetch,
    })
}

/// `order-select`'s draft orders that `selections` names (`Type/id`).
fn selected_orders(context: &Map<String, Value>) -> Result<Vec<Value>, ApiError> {
    let selections: Vec<&str> = match context.get("selections") {
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        _ => {
            return Err(invalid(
                "context.selections",
                "context.selections is required for order-select, as an array",
            ));
        }
    };
    let Some(Value::Object(drafts)) = context.get("draftOrders") else {
        return Err(invalid(
            "context.draftOrders",
            "context.draftOrders is required for order-select, as a Bundle",
        ));
    };
    if drafts.get("resourceType").and_then(Value::as_str) != Some("Bundle") {
        return Err(invalid(
            "context.draftOrders",
            "context.draftOrders must be a Bundle",
        ));
    }
    let orders = drafts
        .get("entry")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|e| e.get("resource"))
        .filter(|r| {
            let reference = format!(
                "{}/{}",
                r["resourceType"].as_str().unwrap_or_default(),
                r["id"].as_str().unwrap_or_default()
            );
            selections.is_empty() || selections.contains(&reference.as_str())
        })
        .cloned()
        .collect();
    Ok(orders)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::cds::SERVICES;
    use serde_json::json;

    fn call() -> Value {
        json!({"hook": "patient-view", "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
            "fhirServer": "https://ehr.example.org/fhir",
            "fhirAuthorization": {"access_token": "t", "token_type": "Bearer", "expires_in": 300,
                "scope": "patient/*.rs", "subject": "prognostics"},
            "context": {"userId": "Practitioner/123", "patientId": "p1"}})
    }

    #[test]
    fn a_patient_view_call_is_read() {
        let parsed = parse(call().to_string().as_bytes(), &SERVICES[0]).unwrap();
        assert_eq!(parsed.patient.as_ref(), "p1");
        assert_eq!(parsed.user.as_deref(), Some("Practitioner/123"));
        assert_eq!(parsed.access_token.as_deref(), Some("t"));
    }

    #[test]
    fn each_fault_is_named() {
        type Change = Box<dyn Fn(&mut Value)>;
        let cases: Vec<(&str, Change)> = vec![
            (
                "hookInstance",
                Box::new(|c| {
                    c.as_object_mut().unwrap().remove("hookInstance");
                }),
            ),
            ("hook", Box::new(|c| c["hook"] = json!("order-sign"))),
            (
                "context.patientId",
                Box::new(|c| {
                    c["context"].as_object_mut().unwrap().remove("patientId");
                }),
            ),
            (
                "context.patientId",
                Box::new(|c| c["context"]["patientId"] = json!("a b")),
            ),
            (
                "fhirServer",
                Box::new(|c| c["fhirServer"] = json!("file:///etc/passwd")),
            ),
            (
                "fhirAuthorization.token_type",
                Box::new(|c| c["fhirAuthorization"]["token_type"] = json!("MAC")),
            ),
            (
                "fhirAuthorization",
                Box::new(|c| {
                    c.as_object_mut().unwrap().remove("fhirServer");
                }),
            ),
            ("context", Box::new(|c| c["context"] = json!("p1"))),
            ("prefetch", Box::new(|c| c["prefetch"] = json!([]))),
        ];
        for (at, change) in cases {
            let mut c = call();
            change(&mut c);
            let error = parse(c.to_string().as_bytes(), &SERVICES[0]).unwrap_err();
            assert_eq!(error.kind(), ErrorKind::Invalid, "{at}");
            assert!(
                format!("{error:?}").contains(&format!("\"{at}\"")),
                "{at}: {error:?}"
            );
        }
        assert!(parse(b"{not json", &SERVICES[0]).is_err());
    }

    #[test]
    fn order_select_needs_its_draft_orders_and_keeps_the_selected_ones() {
        let mut c = call();
        c["hook"] = json!("order-select");
        assert!(parse(c.to_string().as_bytes(), &SERVICES[1]).is_err());
        c["context"]["selections"] = json!(["ServiceRequest/a"]);
        c["context"]["draftOrders"] = json!({"resourceType": "Bundle", "type": "collection",
            "entry": [{"resource": {"resourceType": "ServiceRequest", "id": "a"}},
                      {"resource": {"resourceType": "ServiceRequest", "id": "b"}}]});
        let parsed = parse(c.to_string().as_bytes(), &SERVICES[1]).unwrap();
        assert_eq!(parsed.selected_orders.len(), 1);
        assert_eq!(parsed.selected_orders[0]["id"], "a");
    }
}
