//! The request handler: one POST to `/v4/all_member_push/{command}` checked the way the
//! service checks it (method, command, sdkappid, usersig, admin, rate limit), then a fault
//! drawn, then the request validated by [`rules`](super::rules) and applied or read.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

use super::faults::Fault;
use super::rules::{self, Read, Reject, Request};
use super::{lock, Data, Shared};
use crate::api::codes::code;
use crate::api::wire::{self, command, Status};
use crate::api::{now_unix, usersig};

/// The query parameters the service reads (axum's `Query` URL-decodes them: clients may
/// percent-encode the usersig's `*`, `-` and `_`).
#[derive(Deserialize, Debug, Default)]
pub(crate) struct Auth {
    sdkappid: Option<String>,
    identifier: Option<String>,
    usersig: Option<String>,
}

pub(crate) fn fail(code: i64, info: impl Into<String>) -> Response {
    Json(Status::fail(code, info)).into_response()
}

fn ok<T: Serialize>(body: T) -> Response {
    Json(wire::Response {
        status: Status::ok(),
        body,
    })
    .into_response()
}

pub(crate) async fn handle(
    State(s): State<Arc<Shared>>,
    method: Method,
    Path(cmd): Path<String>,
    query: Result<Query<Auth>, QueryRejection>,
    body: Bytes,
) -> Response {
    s.faults.delay().await;
    if method != Method::POST {
        return fail(code::MALFORMED_URL, "the API only accepts POST");
    }
    let Some(cmd) = command::ALL.iter().copied().find(|c| *c == cmd) else {
        return fail(code::WRONG_COMMAND, format!("unknown command {cmd}"));
    };
    lock(&s.traffic).arrive(cmd);
    let Ok(Query(auth)) = query else {
        return fail(code::MALFORMED_URL, "the query string could not be read");
    };
    if let Err((code, info)) = authenticate(&s, &auth) {
        return fail(code, info);
    }
    if !lock(&s.traffic).admit(cmd, s.rate_limit) {
        return fail(code::FREQUENCY_LIMIT, "API call frequency over the limit");
    }
    if let Some(fault) = s.faults.draw() {
        return injected(&s, fault);
    }
    let mut store = lock(&s.store);
    match rules::parse(cmd, &body, &store.data) {
        Err(Reject { code, info }) => fail(code, info),
        Ok(Request::Write(op)) => match store.write(&op) {
            Ok(()) => ok(wire::Empty {}),
            Err(e) => {
                tracing::warn!("emulator journal write failed: {e}");
                fail(code::INTERNAL, "could not record the write")
            }
        },
        Ok(Request::Read(read)) => answer(read, &store.data),
    }
}

/// The sdkappid, usersig and admin checks, in the service's order; a refusal is the code
/// and the ErrorInfo to answer with.
pub(crate) fn authenticate(s: &Shared, auth: &Auth) -> Result<(), (i64, &'static str)> {
    let Some(sdkappid) = &auth.sdkappid else {
        return Err((code::MISSING_SDKAPPID, "sdkappid is missing"));
    };
    match sdkappid.parse::<u32>() {
        Ok(n) if n == s.sdkappid => {}
        Ok(_) => return Err((code::SDKAPPID_NOT_FOUND, "no such SDKAppID here")),
        Err(_) => return Err((code::MALFORMED_URL, "sdkappid is not a number")),
    }
    let identifier = auth.identifier.as_deref().unwrap_or("");
    let sig = auth.usersig.as_deref().unwrap_or("");
    if let Err(c) = usersig::verify(sig, s.sdkappid, identifier, &s.key, now_unix()) {
        return Err((c, "usersig check failed"));
    }
    if identifier != s.admin {
        return Err((code::NOT_ADMIN, "identifier is not an app admin"));
    }
    Ok(())
}

pub(crate) fn injected(s: &Shared, fault: Fault) -> Response {
    lock(&s.traffic).fault(fault == Fault::Throttle);
    match fault {
        Fault::Internal => fail(code::INTERNAL, "injected fault: internal error"),
        Fault::Throttle => fail(code::FREQUENCY_LIMIT, "injected fault: frequency limit"),
        Fault::BadGateway => {
            (StatusCode::BAD_GATEWAY, "502 Bad Gateway (injected fault)").into_response()
        }
    }
}

/// The answer of a read. Users are answered in reverse order: the documented sample
/// reorders too, and clients must cope.
fn answer(read: Read, data: &Data) -> Response {
    let user = |a: &String| data.users.get(a);
    match read {
        Read::AttrNames => ok(wire::AttrNames {
            attr_names: data
                .attr_names
                .iter()
                .map(|(slot, n)| (slot.to_string(), n.clone()))
                .collect(),
        }),
        Read::Attrs(accounts) => ok(wire::UserAttrsList {
            user_attrs: accounts
                .into_iter()
                .rev()
                .map(|a| wire::UserAttrs {
                    attrs: user(&a).map(|u| u.attrs.clone()).unwrap_or_default(),
                    to_account: a,
                })
                .collect(),
        }),
        Read::Tags(accounts) => ok(wire::UserTagsList {
            user_tags: accounts
                .into_iter()
                .rev()
                .map(|a| wire::UserTags {
                    tags: user(&a).map(|u| u.tags.clone()).unwrap_or_default(),
                    to_account: a,
                })
                .collect(),
        }),
    }
}
