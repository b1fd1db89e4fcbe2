//! The API's error codes: what each means, what the user should do, and how a client treats it.
//!
//! One table (spec §3) drives three views: [`meaning`] and [`fix`] for messages, [`classify`] for
//! the limiter's retry decision. The client itself only acts on [`ErrorClass::RegenerateSig`].

/// How a failed request should be handled by whoever drives the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// Transient: send the same request again (with backoff).
    Retry,
    /// An answer that could not be trusted (e.g. a garbled HTTP 200): send it again a few
    /// times at most; a server that keeps answering nonsense is a fatal error.
    RetryFew,
    /// Rate limited: send it again, but slow the request pace down first.
    SlowDown,
    /// The usersig expired: make a new one and send again once (the client does this itself).
    RegenerateSig,
    /// Bad usersig and rate exceeded: wait a minute, then try once more.
    RetryAfterMinute,
    /// A bug, a configuration or an input problem: retrying cannot help.
    Fatal,
}

/// Error codes the emulator answers with, named so both sides agree.
pub mod code {
    pub const JSON_PARSE: i64 = 90001;
    pub const NOT_ADMIN: i64 = 90009;
    pub const TOO_MANY_ACCOUNTS: i64 = 90018;
    pub const TAG_TOO_LONG: i64 = 90020;
    pub const TOO_MANY_TAGS: i64 = 90032;
    pub const INVALID_ATTRIBUTE: i64 = 90033;
    /// timpush, per account in an `ErrorList`: the account is of the other type than the
    /// attribute or tag (a UserID for a RegistrationID slot, or the reverse).
    pub const WRONG_ACCOUNT_TYPE: i64 = 90035;
    /// timpush, per account in an `ErrorList`: the account does not exist.
    pub const ACCOUNT_NOT_FOUND: i64 = 70107;
    pub const INTERNAL: i64 = 91000;
    pub const MALFORMED_URL: i64 = 60002;
    pub const FREQUENCY_LIMIT: i64 = 60007;
    pub const WRONG_COMMAND: i64 = 60009;
    pub const MISSING_SDKAPPID: i64 = 60012;
    pub const SIG_EXPIRED: i64 = 70001;
    pub const SIG_EMPTY: i64 = 70002;
    pub const SIG_UNDECODABLE: i64 = 70003;
    pub const SIG_MISMATCH: i64 = 70009;
    pub const SIG_IDENTIFIER_MISMATCH: i64 = 70013;
    pub const SIG_SDKAPPID_MISMATCH: i64 = 70014;
    pub const SDKAPPID_NOT_FOUND: i64 = 70020;
}

/// How a client treats `code` (spec §3).
pub fn classify(code: i64) -> ErrorClass {
    match code {
        91000 | 60008 | 60013 | 60014 => ErrorClass::Retry,
        60007 | 60011 | 60018 | 60019 => ErrorClass::SlowDown,
        70001 => ErrorClass::RegenerateSig,
        70050 => ErrorClass::RetryAfterMinute,
        _ => ErrorClass::Fatal,
    }
}

/// What `code` means, in a few words.
pub fn meaning(code: i64) -> &'static str {
    match code {
        0 => "request failed without an error code",
        90001 | 60003 => "request JSON could not be parsed",
        90009 | 60010 => "identifier is not an app admin",
        90018 => "too many accounts in one request",
        90020 => "tag too long (more than 50 bytes)",
        90032 => "too many tags: more than 100 on a user with the tags other systems set, or more than 10 for one user in one request",
        90033 => "invalid attribute (name not configured, or bad value)",
        91000 => "internal server error",
        60007 => "API call frequency over the limit",
        60011 => "app request frequency over the limit",
        60018 | 60019 => "requests too frequent",
        60008 => "server timeout",
        60013 => "server could not parse a response",
        60014 => "account switch timeout",
        70050 => "bad usersig and request rate exceeded",
        60002 => "malformed request URL",
        60009 => "unknown command",
        60012 => "sdkappid missing from the request",
        60015 => "wrong account type",
        60006 => "SDKAppID invalid",
        60016 => "SDKAppID disabled",
        60017 => "request disabled",
        60020 => "edition expired",
        60021 => "caller IP not allowed",
        70001 => "usersig expired",
        70002 => "usersig empty",
        70003 => "usersig could not be decoded",
        70005 => "usersig invalid",
        70009 => "usersig signature mismatch (wrong SecretKey)",
        70013 => "identifier differs from the one inside the usersig",
        70014 => "sdkappid differs from the one inside the usersig",
        70016 => "SecretKey not found for this app",
        70020 => "SDKAppID not found",
        70052 => "usersig has been invalidated",
        90045 => "push to all users is not enabled",
        90035 => "the account is of the other type than the attribute or tag (UserID vs RegistrationID)",
        70107 => "the account does not exist",
        _ => "unknown error code",
    }
}

/// What the user should do about `code`.
pub fn fix(code: i64) -> &'static str {
    match code {
        90001 | 60003 | 90018 | 60002 | 60009 | 60012 | 60015 | 0 => {
            "this is a bug in timattr; please report it with the command that failed"
        }
        90009 | 60010 => "set app.admin to an administrator account of the app",
        90020 => "shorten the user's tags to at most 50 UTF-8 bytes each",
        90032 => "remove some of the user's tags (in the users files, or those other systems set) so that it holds at most 100",
        90033 => "check that every attribute name is configured in the app and each value is a string of at most 50 bytes",
        91000 | 60008 | 60013 | 60014 => {
            "the server kept failing; check the service status, then run the command again later"
        }
        60007 | 60011 | 60018 | 60019 => "lower apply.rate_limit, or wait and run the command again",
        70050 => "wait a minute, then check the SecretKey and run the command again",
        60006 | 60016 | 60020 | 70016 | 70020 => {
            "check app.sdkappid and that app.region (or app.endpoint) is the app's region"
        }
        60017 | 60021 => "check the app's settings in the Chat console (feature switches, IP allow list)",
        70001 => "the usersig expired; check the system clock and run the command again",
        70002 | 70003 | 70005 => "check the SecretKey in the secret environment variable",
        70052 => "the usersig was invalidated (e.g. the SecretKey was changed in the Chat console): export the app's current key and run the command again",
        70009 => "the SecretKey is wrong: check the secret environment variable holds this app's key",
        70013 | 70014 => "check app.admin and app.sdkappid match the app the SecretKey belongs to",
        90045 => "enable Push to all users in the Chat console (Pro edition or above)",
        90035 => "give the account to an attribute of its own type (`account_type: user_id` for UserIDs, `registration_id` for RegistrationIDs), or move it to a users file of that attribute's type",
        70107 => "check the account id (a UserID must have logged in to Chat, a RegistrationID must come from the Push SDK), or remove the account from the users files",
        _ => "see Tencent Cloud Chat's error code list for this code",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_follows_the_spec_table() {
        for c in [91000, 60008, 60013, 60014] {
            assert_eq!(classify(c), ErrorClass::Retry, "{c}");
        }
        for c in [60007, 60011, 60018, 60019] {
            assert_eq!(classify(c), ErrorClass::SlowDown, "{c}");
        }
        assert_eq!(classify(70001), ErrorClass::RegenerateSig);
        assert_eq!(classify(70050), ErrorClass::RetryAfterMinute);
        for c in [
            90001, 60003, 90009, 60010, 90018, 90020, 90032, 90033, 60002, 60009, 60012, 60015,
            60006, 60016, 60017, 60020, 60021, 70002, 70003, 70005, 70009, 70013, 70014, 70016,
            70020, 70052, 90045, 90035, 70107, 12345,
        ] {
            assert_eq!(classify(c), ErrorClass::Fatal, "{c}");
        }
    }

    #[test]
    fn every_listed_code_has_a_meaning_and_a_fix() {
        for c in [
            90001, 60003, 90009, 60010, 90018, 90020, 90032, 90033, 91000, 60007, 60011, 60018,
            60019, 60008, 60013, 60014, 70050, 60002, 60009, 60012, 60015, 60006, 60016, 60017,
            60020, 60021, 70001, 70002, 70003, 70005, 70009, 70013, 70014, 70016, 70020, 70052,
            90045, 90035, 70107,
        ] {
            assert_ne!(meaning(c), "unknown error code", "{c}");
            assert_ne!(fix(c), fix(1), "{c}");
        }
    }
}
