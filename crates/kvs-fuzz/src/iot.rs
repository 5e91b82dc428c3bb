//! What the IoT credentials endpoint answers (status and body) and the endpoint as configured,
//! through `kvs-iot-credentials`' parsers.

use arbitrary::{Arbitrary, Unstructured};
use kvs_iot_credentials::fuzzing::{interpret_answer, parse_endpoint};
use serde_json::{json, Value};

use crate::signaling::Json;

#[derive(Debug, Arbitrary)]
enum Body {
    /// A credentials answer with its fields usually strings, the expiration anything.
    Credentials {
        fields: [Option<String>; 3],
        expiration: Option<Expiration>,
        wrap: bool,
    },
    /// A refusal with a message.
    Refusal(Option<String>),
    Json(Json),
    Bytes(Vec<u8>),
}

#[derive(Debug, Arbitrary)]
enum Expiration {
    /// `yyyy-mm-ddThh:mm:ssZ` from numbers (out of range ones included).
    Parts(u16, u8, u8, u8, u8, u8, Option<u32>),
    Text(String),
    Number(i64),
}

#[derive(Debug, Arbitrary)]
struct Answer {
    status: u8,
    body: Body,
}

const STATUSES: [u16; 9] = [200, 400, 401, 403, 404, 429, 500, 503, 302];

/// The bytes as an endpoint, then an answer built from them (a status and a body) through
/// `interpret`.
pub fn credentials(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok((host, _port)) = parse_endpoint(text) {
            assert!(!host.is_empty());
        }
        let _ = interpret_answer(200, data);
    }
    let u = Unstructured::new(data);
    let Ok(answer) = Answer::arbitrary_take_rest(u) else {
        return;
    };
    let status = STATUSES[usize::from(answer.status) % STATUSES.len()];
    let body = match &answer.body {
        Body::Credentials {
            fields,
            expiration,
            wrap,
        } => {
            let mut c = serde_json::Map::new();
            for (name, value) in ["accessKeyId", "secretAccessKey", "sessionToken"]
                .iter()
                .zip(fields)
            {
                if let Some(v) = value {
                    c.insert((*name).into(), json!(v));
                }
            }
            match expiration {
                Some(Expiration::Parts(y, mo, d, h, mi, s, frac)) => {
                    let frac = frac.map(|f| format!(".{f}")).unwrap_or_default();
                    c.insert(
                        "expiration".into(),
                        json!(format!(
                            "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}{frac}Z"
                        )),
                    );
                }
                Some(Expiration::Text(t)) => {
                    c.insert("expiration".into(), json!(t));
                }
                Some(Expiration::Number(n)) => {
                    c.insert("expiration".into(), json!(n));
                }
                None => {}
            }
            let c = Value::Object(c);
            if *wrap {
                json!({ "credentials": c }).to_string().into_bytes()
            } else {
                c.to_string().into_bytes()
            }
        }
        Body::Refusal(message) => json!({ "message": message }).to_string().into_bytes(),
        Body::Json(j) => j.value().to_string().into_bytes(),
        Body::Bytes(b) => b.clone(),
    };
    match interpret_answer(status, &body) {
        Ok(_) => assert_eq!(status, 200, "credentials from a {status} answer"),
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}
