//! A fake Kubernetes API for fast tests of a reconcile's calls: an in-memory object store behind
//! a `kube::Client` that answers GET, POST (create), PUT (replace, guarded by resourceVersion),
//! PATCH (server-side apply, guarded when the body names a resourceVersion) and DELETE, records
//! every call in order, and fails the calls a test asks it to fail. It is not a real API server
//! (no admission, no defaulting, no field ownership): the cluster tests prove behaviour against
//! the real one; this pins the order and number of writes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    collections::BTreeMap,
    convert::Infallible,
    sync::{Arc, Mutex},
};

use http::{Method, Request, Response, StatusCode};
use kube::{Client, client::Body};
use serde_json::{Value, json};

/// One call the fake answered: `"POST /api/v1/namespaces/n/secrets"`.
pub type Call = String;

/// A test's rule for failing calls: given (method, path, body), the HTTP status, reason and
/// message to answer.
type FailRule = Box<dyn Fn(&Method, &str, &Value) -> Option<(u16, &'static str, String)> + Send>;

#[derive(Default)]
pub struct State {
    pub objects: BTreeMap<String, Value>,
    calls: Vec<Call>,
    next_version: u64,
    fail: Option<FailRule>,
}

/// The fake API and a client talking to it.
#[derive(Clone, Default)]
pub struct FakeApi(pub Arc<Mutex<State>>);

impl FakeApi {
    /// A client whose every request this fake answers.
    pub fn client(&self) -> Client {
        let fake = self.clone();
        let service = tower::service_fn(move |req: Request<Body>| {
            let fake = fake.clone();
            async move { Ok::<_, Infallible>(fake.handle(req).await) }
        });
        Client::new(service, "default")
    }

    /// Stores `obj` at `path` (its item path, e.g. `/api/v1/namespaces/n/secrets/s`).
    pub fn put(&self, path: &str, mut obj: Value) {
        let mut s = self.0.lock().unwrap();
        s.next_version += 1;
        let version = s.next_version.to_string();
        let meta = &mut obj["metadata"];
        if meta.get("uid").is_none() {
            meta["uid"] = json!(format!("uid-{version}"));
        }
        meta["resourceVersion"] = json!(version);
        s.objects.insert(path.to_owned(), obj);
    }

    pub fn get(&self, path: &str) -> Option<Value> {
        self.0.lock().unwrap().objects.get(path).cloned()
    }

    /// Every call so far, except Event writes (best effort, not part of the write order).
    pub fn calls(&self) -> Vec<Call> {
        self.0
            .lock()
            .unwrap()
            .calls
            .iter()
            .filter(|c| !c.contains("/events"))
            .cloned()
            .collect()
    }

    /// Only the writes among [`Self::calls`].
    pub fn writes(&self) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| !c.starts_with("GET "))
            .collect()
    }

    /// Event writes: the reasons of the Events created.
    pub fn event_reasons(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap()
            .objects
            .iter()
            .filter(|(path, _)| path.contains("/events/"))
            .filter_map(|(_, e)| e["reason"].as_str().map(str::to_owned))
            .collect()
    }

    pub fn clear_calls(&self) {
        self.0.lock().unwrap().calls.clear();
    }

    /// Fails every call `rule` picks with its status, reason and message.
    pub fn fail_when(
        &self,
        rule: impl Fn(&Method, &str, &Value) -> Option<(u16, &'static str, String)> + Send + 'static,
    ) {
        self.0.lock().unwrap().fail = Some(Box::new(rule));
    }

    pub fn stop_failing(&self) {
        self.0.lock().unwrap().fail = None;
    }

    async fn handle(&self, req: Request<Body>) -> Response<Body> {
        let (parts, body) = req.into_parts();
        let body = body.collect_bytes().await.unwrap_or_default();
        let path = parts.uri.path().to_owned();
        let method = parts.method.clone();
        let mut s = self.0.lock().unwrap();
        s.calls.push(format!("{method} {path}"));
        let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        if let Some((code, reason, message)) =
            s.fail.as_ref().and_then(|f| f(&method, &path, &parsed))
        {
            return status(code, reason, &message);
        }
        match method {
            Method::GET => match s.objects.get(&path) {
                Some(obj) => ok(StatusCode::OK, obj),
                None => status(404, "NotFound", "not found"),
            },
            Method::POST => {
                let name = parsed["metadata"]["name"]
                    .as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| format!("generated-{}", s.next_version));
                let item = format!("{path}/{name}");
                if s.objects.contains_key(&item) {
                    return status(409, "AlreadyExists", "already exists");
                }
                let stored = store(&mut s, &item, parsed, None);
                ok(StatusCode::CREATED, &stored)
            }
            Method::PUT => {
                let Some(old) = s.objects.get(&path).cloned() else {
                    return status(404, "NotFound", "not found");
                };
                if parsed["metadata"]["resourceVersion"] != old["metadata"]["resourceVersion"] {
                    return status(409, "Conflict", "the object has been modified");
                }
                let stored = store(&mut s, &path, parsed, Some(&old));
                ok(StatusCode::OK, &stored)
            }
            Method::PATCH => {
                let (item, subresource) = match path.strip_suffix("/status") {
                    Some(item) => (item.to_owned(), true),
                    None => (path.clone(), false),
                };
                let old = s.objects.get(&item).cloned();
                let wanted = &parsed["metadata"]["resourceVersion"];
                if let Some(old) = &old
                    && !wanted.is_null()
                    && *wanted != old["metadata"]["resourceVersion"]
                {
                    return status(409, "Conflict", "the object has been modified");
                }
                let new = match (subresource, &old) {
                    (true, Some(old)) => {
                        let mut obj = old.clone();
                        obj["status"] = parsed["status"].clone();
                        obj
                    }
                    (true, None) => return status(404, "NotFound", "not found"),
                    (false, _) => parsed,
                };
                let stored = store(&mut s, &item, new, old.as_ref());
                ok(StatusCode::OK, &stored)
            }
            Method::DELETE => match s.objects.remove(&path) {
                Some(obj) => ok(StatusCode::OK, &obj),
                None => status(404, "NotFound", "not found"),
            },
            _ => status(405, "MethodNotAllowed", "method not allowed"),
        }
    }
}

fn store(s: &mut State, path: &str, mut obj: Value, old: Option<&Value>) -> Value {
    s.next_version += 1;
    let uid = old
        .and_then(|o| o["metadata"]["uid"].as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("uid-{}", s.next_version));
    obj["metadata"]["uid"] = json!(uid);
    obj["metadata"]["resourceVersion"] = json!(s.next_version.to_string());
    s.objects.insert(path.to_owned(), obj.clone());
    obj
}

fn ok(code: StatusCode, obj: &Value) -> Response<Body> {
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(obj).unwrap()))
        .unwrap()
}

fn status(code: u16, reason: &str, message: &str) -> Response<Body> {
    let body = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                      "message": message, "reason": reason, "code": code});
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(&body).unwrap()))
        .unwrap()
}
