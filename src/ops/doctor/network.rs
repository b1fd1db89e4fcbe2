//! The checks that talk to the endpoint: host and TLS, the API's answer to
//! `im_get_attr_name` (the only request doctor sends), the API family and slots, and the
//! server's clock from that answer's `Date` header.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use super::{name, Recorder, Report};
use crate::api::{self, reach, ApiError, Received};
use crate::model::limits::MAX_ATTRIBUTE_NAMES;
use crate::ops::connect::Connection;
use crate::settings::{Endpoint, Settings};

/// How long resolving and the handshake may take.
const REACH_TIMEOUT: Duration = Duration::from_secs(10);
/// A clock further off than this is a failure: usersigs carry the time they were made.
const MAX_SKEW_SECS: u64 = 5 * 60;

/// Answers received, each with the local time it arrived.
type Seen = Arc<Mutex<Vec<(Received, SystemTime)>>>;

pub(super) async fn checks(r: &mut Report, s: &Settings, recorder: Option<Arc<Recorder>>) {
    let reachable = endpoint(r, s).await;
    let seen = Seen::default();
    let slots = if !r.passed(name::SECRET) {
        r.skip(name::API, "the secret (secret)");
        None
    } else if !reachable {
        r.skip(name::API, "the endpoint reachable (endpoint, tls)");
        None
    } else {
        api_check(r, s, observer(&seen, recorder)).await
    };
    family(r, s.api, slots.as_ref());
    attribute_names(r, &s.attributes, slots.as_ref().map(|s| &s.names));
    if let Some(slots) = &slots {
        account_types(r, s, slots);
    }
    clock(r, &seen);
}

/// Keeps every answer for the clock check, and saves it when recording.
fn observer(seen: &Seen, recorder: Option<Arc<Recorder>>) -> api::Observer {
    let seen = seen.clone();
    Arc::new(move |answer: &Received| {
        if let Some(rec) = &recorder {
            rec.save(answer);
        }
        let mut seen = seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.push((answer.clone(), SystemTime::now()));
    })
}

/// The endpoint and TLS checks; whether the endpoint can be reached.
async fn endpoint(r: &mut Report, s: &Settings) -> bool {
    let base = match &s.endpoint {
        Endpoint::Embedded => {
            r.pass(
                name::ENDPOINT,
                "embedded: the built-in emulator, started in this process on a loopback port (no network)",
            );
            r.pass(
                name::TLS,
                "not needed: the built-in emulator is in this process",
            );
            return true;
        }
        Endpoint::Url { base, .. } => base,
    };
    let Some((host, port, https)) = reach::host_port(base) else {
        r.fail(
            name::ENDPOINT,
            format!("{base} is not a usable URL"),
            "set app.endpoint to https://HOST[:PORT], or use app.region",
        );
        r.skip(name::TLS, "a usable endpoint (endpoint)");
        return false;
    };
    match reach::resolve(&host, port, REACH_TIMEOUT).await {
        Ok(ips) => {
            let shown: Vec<String> = ips.iter().take(3).map(ToString::to_string).collect();
            let more = if ips.len() > 3 { ", …" } else { "" };
            r.pass(
                name::ENDPOINT,
                format!("{host} resolves to {}{more}", shown.join(", ")),
            );
        }
        Err(why) => {
            r.fail(
                name::ENDPOINT,
                format!("{host} does not resolve: {why}"),
                format!("check app.region / app.endpoint for a typo, and this machine's DNS (`getent hosts {host}`)"),
            );
            r.skip(name::TLS, "the endpoint's host to resolve (endpoint)");
            return false;
        }
    }
    if !https {
        r.pass(
            name::TLS,
            format!("not used: plain HTTP to the loopback host {host} (allowed for loopback only)"),
        );
        return true;
    }
    match reach::tls_handshake(&host, port, REACH_TIMEOUT).await {
        Ok(version) => {
            r.pass(
                name::TLS,
                format!("{version} handshake with {host}:{port} passed; its certificate is valid for {host}"),
            );
            true
        }
        Err(why) => {
            r.fail(
                name::TLS,
                format!("{host}:{port}: {why}"),
                "check that app.endpoint / app.region is the Chat REST API's host; a proxy that intercepts TLS is not trusted (timattr trusts the public web roots only)",
            );
            false
        }
    }
}

/// Sends `im_get_attr_name`; the app's slots when the API accepted the usersig.
async fn api_check(
    r: &mut Report,
    s: &Settings,
    observer: api::Observer,
) -> Option<api::AttrSlots> {
    let conn = match Connection::open_for_reads(s).await {
        Ok(c) => c,
        Err(e) => {
            r.fail(
                name::API,
                e.to_string(),
                "fix what the finding names, then run `timattr doctor` again",
            );
            return None;
        }
    };
    conn.client.observe(observer);
    let answer = conn.client.get_attr_slots().await;
    if let Err(e) = conn.close().await {
        tracing::warn!("{e}");
    }
    match answer {
        Ok(slots) => {
            r.pass(
                name::API,
                format!(
                    "{} answered OK from {}: sdkappid {}, admin {} and the key are accepted",
                    s.api.name(api::Command::GetAttrName),
                    match &s.endpoint {
                        Endpoint::Embedded => "the built-in emulator",
                        Endpoint::Url { host, .. } => host,
                    },
                    s.sdkappid,
                    s.admin
                ),
            );
            Some(slots)
        }
        Err(e) => {
            let (finding, fix) = explain(&e, &s.endpoint);
            r.fail(name::API, finding, fix);
            None
        }
    }
}

/// A failed `im_get_attr_name` in the operator's terms: the code and its meaning, or what
/// went wrong on the way, and the fix from the code table.
fn explain(e: &ApiError, endpoint: &Endpoint) -> (String, String) {
    // The embedded emulator's port changes every run; its name does not.
    let from = match endpoint {
        Endpoint::Embedded => "the built-in emulator".to_owned(),
        Endpoint::Url { .. } => e.host.to_string(),
    };
    let finding = match e.code() {
        Some(code) => format!(
            "{} answered error {code} from {from}: {}",
            e.command,
            api::meaning(code)
        ),
        None => format!("{}: {} from {from}", e.command, e.reason_short()),
    };
    (finding, e.advice().to_owned())
}

/// The API family, and each slot's account type (`AttrTypes` in the timpush family; the
/// legacy family has only user_id slots).
fn family(r: &mut Report, api: api::Family, slots: Option<&api::AttrSlots>) {
    let family = format!("{api} (v4/{api})");
    let only = if api.has_account_types() {
        ""
    } else {
        " (the only type of this family)"
    };
    match slots {
        Some(slots) if !slots.names.is_empty() => {
            let listed: Vec<String> = slots
                .names
                .iter()
                .map(|(slot, n)| format!("{slot} {n}: {}", slots.type_of(*slot)))
                .collect();
            r.info(
                name::FAMILY,
                format!("{family}; slot account types: {}{only}", listed.join(", ")),
            );
        }
        Some(_) => r.info(name::FAMILY, format!("{family}; no slot configured yet")),
        None => r.info(name::FAMILY, family),
    }
}

/// A declared `account_type` that differs from its slot's live type: an apply would refuse
/// before sending anything (a slot's type can never change, DESIGN.md §12).
fn account_types(r: &mut Report, s: &Settings, slots: &api::AttrSlots) {
    let declared = s.declared_types();
    if let Err(why) =
        crate::plan::check_slot_types(&declared, &slots.names, &slots.types, "in the app")
    {
        // One attribute_names check: it fails, and says this too.
        let fix = "declare each attribute's `account_type` as its slot has it, or give the other accounts' values a new attribute name";
        match r
            .checks
            .iter_mut()
            .find(|c| c.name == name::ATTRIBUTE_NAMES)
        {
            Some(c) => {
                c.finding = format!("{}; {why}", c.finding);
                if c.status == super::Status::Fail {
                    c.fix = format!("{}; {fix}", c.fix);
                } else {
                    c.status = super::Status::Fail;
                    c.fix = fix.to_owned();
                }
            }
            None => r.fail(name::ATTRIBUTE_NAMES, why, fix),
        }
    }
}

/// The project's attribute names against the app's slots; other systems' slots.
fn attribute_names(r: &mut Report, attributes: &[String], slots: Option<&BTreeMap<u8, String>>) {
    let Some(slots) = slots else {
        r.skip(name::ATTRIBUTE_NAMES, "the API to accept the UserSig (api)");
        r.skip(name::OTHER_SLOTS, "the API to accept the UserSig (api)");
        return;
    };
    let slot_of = |n: &str| slots.iter().find(|(_, v)| *v == n).map(|(k, _)| *k);
    let configured: Vec<String> = attributes
        .iter()
        .filter_map(|n| slot_of(n).map(|k| format!("{n} (slot {k})")))
        .collect();
    let missing: Vec<&str> = attributes
        .iter()
        .filter(|n| slot_of(n).is_none())
        .map(String::as_str)
        .collect();
    let free = MAX_ATTRIBUTE_NAMES.saturating_sub(slots.len());
    let configured = if configured.is_empty() {
        "none of the project's names is configured in the app yet".to_owned()
    } else {
        format!("configured in the app: {}", configured.join(", "))
    };
    if missing.is_empty() {
        r.pass(name::ATTRIBUTE_NAMES, configured);
    } else if missing.len() <= free {
        r.pass(
            name::ATTRIBUTE_NAMES,
            format!(
                "{configured}; not yet configured: {} — the next apply configures {} in free slots ({free} of {MAX_ATTRIBUTE_NAMES} free)",
                missing.join(", "),
                if missing.len() == 1 { "it" } else { "them" }
            ),
        );
    } else {
        r.fail(
            name::ATTRIBUTE_NAMES,
            format!(
                "{configured}; not configured: {} — {} slots needed but only {free} of {MAX_ATTRIBUTE_NAMES} are free, so an apply would refuse before sending anything",
                missing.join(", "),
                missing.len()
            ),
            "the API cannot delete or rename an attribute name: drop names from `attributes` until they fit the free slots, or agree with the owners of the other systems' slots (other_slots) which names the app keeps",
        );
    }
    let others: Vec<String> = slots
        .iter()
        .filter(|(_, n)| !attributes.contains(n))
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    if others.is_empty() {
        r.info(
            name::OTHER_SLOTS,
            "none: no slot holds a name the project does not declare",
        );
    } else {
        r.info(
            name::OTHER_SLOTS,
            format!(
                "slots {} hold names the project does not declare (another system's, or dropped from `attributes`): timattr never touches them",
                others.join(", ")
            ),
        );
    }
}

/// The server's `Date` against the local clock at arrival.
fn clock(r: &mut Report, seen: &Seen) {
    let seen = seen.lock().unwrap_or_else(|p| p.into_inner());
    let Some((answer, at)) = seen.last() else {
        r.skip(name::CLOCK, "an answer from the endpoint (api)");
        return;
    };
    let Some(server) = answer.date() else {
        r.info(
            name::CLOCK,
            "the server's answer has no readable Date header: the clocks cannot be compared",
        );
        return;
    };
    // The Date header counts whole seconds: compare it with the arrival's whole second.
    let at = SystemTime::UNIX_EPOCH
        + Duration::from_secs(
            at.duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        );
    let (ahead, by) = match server.duration_since(at) {
        Ok(d) => (true, d.as_secs()),
        Err(e) => (false, e.duration().as_secs()),
    };
    let shown = humantime::format_duration(Duration::from_secs(by));
    let date = String::from_utf8_lossy(
        answer
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("date"))
            .map_or(&b""[..], |(_, v)| v),
    )
    .into_owned();
    if by <= 1 {
        r.pass(
            name::CLOCK,
            format!(
                "this machine's clock agrees with the server's (Date: {date}) to within a second"
            ),
        );
    } else if by <= MAX_SKEW_SECS {
        r.pass(
            name::CLOCK,
            format!(
                "the server's clock (Date: {date}) is {shown} {} this machine's: within 5 minutes",
                if ahead { "ahead of" } else { "behind" }
            ),
        );
    } else {
        r.fail(
            name::CLOCK,
            format!(
                "the server's clock (Date: {date}) is {shown} {} this machine's: UserSigs carry the time they were made and the API judges them by its own clock, so a skew over 5 minutes can get them refused (70001 usersig expired, or not yet valid)",
                if ahead { "ahead of" } else { "behind" }
            ),
            "set this machine's clock right: turn on time synchronisation (e.g. `timedatectl set-ntp true`), then run `timattr doctor` again",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::doctor::Status;

    fn run(attributes: &[&str], slots: &[(u8, &str)]) -> Report {
        let attributes: Vec<String> = attributes.iter().map(|a| (*a).to_owned()).collect();
        let slots: BTreeMap<u8, String> =
            slots.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
        let mut r = Report::default();
        attribute_names(&mut r, &attributes, Some(&slots));
        r
    }

    #[test]
    fn names_configured_missing_with_room_missing_without_room_and_others() {
        let r = run(&["sex", "city"], &[(0, "sex"), (4, "city")]);
        assert_eq!(r.checks[0].status, Status::Pass);
        assert_eq!(
            r.checks[0].finding,
            "configured in the app: sex (slot 0), city (slot 4)"
        );
        assert!(r.checks[1].finding.starts_with("none"), "{:?}", r.checks[1]);

        let r = run(&["sex", "tier"], &[(0, "sex"), (1, "legacy")]);
        assert_eq!(r.checks[0].status, Status::Pass);
        assert!(
            r.checks[0].finding.contains("not yet configured: tier"),
            "{:?}",
            r.checks[0]
        );
        assert!(
            r.checks[0].finding.contains("8 of 10 free"),
            "{:?}",
            r.checks[0]
        );
        assert_eq!(r.checks[1].status, Status::Info);
        assert!(
            r.checks[1].finding.contains("1 legacy"),
            "{:?}",
            r.checks[1]
        );

        let nine: Vec<(u8, String)> = (0..9).map(|k| (k, format!("o{k}"))).collect();
        let nine: Vec<(u8, &str)> = nine.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = run(&["a", "b"], &nine);
        assert_eq!(r.checks[0].status, Status::Fail);
        assert!(
            r.checks[0]
                .finding
                .contains("2 slots needed but only 1 of 10"),
            "{:?}",
            r.checks[0]
        );
        assert!(!r.checks[0].fix.is_empty());
        let r = run(&["a"], &nine);
        assert_eq!(r.checks[0].status, Status::Pass, "{:?}", r.checks[0]);
    }
}
