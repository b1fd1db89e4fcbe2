//! Simulated misconfigurations of a real app, so that `timattr doctor` (its tests, and the
//! README's example) can show each failure offline: `timattr emulator --simulate LIST`, or
//! for `endpoint: embedded` the environment variable [`ENV`].
//!
//! LIST is comma-separated:
//! - `wrong-key`: the app's key is another one, so every usersig fails (70009);
//! - `wrong-sdkappid`: the app has another SDKAppID, as when the region is wrong (70020);
//! - `full-slots`: another system uses every free attribute slot of the app;
//! - `clock-skew=DURATION`: the server's clock (its `Date` header) runs DURATION ahead of
//!   the local one (`-DURATION`: behind), e.g. `clock-skew=10m`.
//!
//! A simulating emulator never writes its data file: what it simulates stays out of the app's data.

use std::str::FromStr;
use std::time::{Duration, SystemTime};

use super::Data;
use crate::api::Secret;

/// The environment variable the embedded emulator reads its simulations from.
pub const ENV: &str = "TIMATTR_EMULATOR_SIMULATE";

/// The names [`Simulate::from_str`] accepts.
const NAMES: [&str; 4] = ["wrong-key", "wrong-sdkappid", "full-slots", "clock-skew"];

/// What the emulator simulates; the default simulates nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Simulate {
    pub wrong_key: bool,
    pub wrong_sdkappid: bool,
    pub full_slots: bool,
    /// Seconds the server's clock is ahead of the local one (negative: behind).
    pub clock_skew: i64,
}

impl FromStr for Simulate {
    type Err = String;

    fn from_str(list: &str) -> Result<Simulate, String> {
        let mut s = Simulate::default();
        for item in list.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (name, value) = match item.split_once('=') {
                Some((n, v)) => (n.trim(), Some(v.trim())),
                None => (item, None),
            };
            match (name, value) {
                ("wrong-key", None) => s.wrong_key = true,
                ("wrong-sdkappid", None) => s.wrong_sdkappid = true,
                ("full-slots", None) => s.full_slots = true,
                ("clock-skew", Some(v)) => s.clock_skew = skew(v)?,
                ("clock-skew", None) => {
                    return Err(
                        "clock-skew needs an amount, e.g. clock-skew=10m or clock-skew=-10m".into(),
                    )
                }
                (known, Some(_)) if NAMES.contains(&known) => {
                    return Err(format!("{known} takes no value"))
                }
                (other, _) => {
                    let hint = crate::suggest::did_you_mean(other, NAMES)
                        .map(|n| format!(" (did you mean `{n}`?)"))
                        .unwrap_or_default();
                    return Err(format!(
                        "unknown simulation `{other}`{hint}: expected a comma-separated list of wrong-key, wrong-sdkappid, full-slots, clock-skew=DURATION"
                    ));
                }
            }
        }
        Ok(s)
    }
}

/// `10m`, `-90s`, `+1h`: a signed duration in whole seconds.
fn skew(v: &str) -> Result<i64, String> {
    let (sign, amount) = match v.strip_prefix('-') {
        Some(rest) => (-1, rest),
        None => (1, v.strip_prefix('+').unwrap_or(v)),
    };
    let d = humantime::parse_duration(amount)
        .map_err(|e| format!("clock-skew={v}: {e} (expected e.g. 10m, -90s)"))?;
    i64::try_from(d.as_secs())
        .map(|n| sign * n)
        .map_err(|_| format!("clock-skew={v} is too large"))
}

impl Simulate {
    /// The simulations of the embedded emulator, from [`ENV`] (unset or empty: none).
    pub fn from_env() -> Result<Simulate, String> {
        match std::env::var(ENV) {
            Ok(v) => v.parse().map_err(|e| format!("{ENV}: {e}")),
            Err(std::env::VarError::NotPresent) => Ok(Simulate::default()),
            Err(std::env::VarError::NotUnicode(_)) => Err(format!("{ENV} is not UTF-8")),
        }
    }

    pub fn is_active(&self) -> bool {
        *self != Simulate::default()
    }

    /// The key the app checks usersigs with.
    pub(crate) fn key(&self, key: Secret) -> Secret {
        if self.wrong_key {
            Secret::new(format!("{}-another-app's-key", key.expose()))
        } else {
            key
        }
    }

    /// The SDKAppID the app has.
    pub(crate) fn sdkappid(&self, sdkappid: u32) -> u32 {
        if self.wrong_sdkappid {
            sdkappid.wrapping_add(1)
        } else {
            sdkappid
        }
    }

    /// Gives every free attribute slot a name of another system.
    pub(crate) fn fill_slots(&self, data: &mut Data) {
        if self.full_slots {
            for slot in 0..crate::model::limits::MAX_ATTRIBUTE_NAMES as u8 {
                data.attr_names
                    .entry(slot)
                    .or_insert_with(|| format!("other_system_{slot}"));
            }
        }
    }

    /// The `Date` header's value when the clock is skewed (`None`: the server's own).
    pub(crate) fn date(&self, now: SystemTime) -> Option<String> {
        let shift = Duration::from_secs(self.clock_skew.unsigned_abs());
        let then = match self.clock_skew {
            0 => return None,
            n if n > 0 => now.checked_add(shift)?,
            _ => now.checked_sub(shift)?,
        };
        Some(httpdate::fmt_http_date(then))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_parse_and_mistakes_are_named() {
        let s: Simulate = "wrong-key, full-slots,clock-skew=-10m".parse().unwrap();
        assert!(s.wrong_key && s.full_slots && !s.wrong_sdkappid);
        assert_eq!(s.clock_skew, -600);
        assert_eq!("".parse::<Simulate>().unwrap(), Simulate::default());
        assert!(!Simulate::default().is_active());
        let s: Simulate = "wrong-sdkappid,clock-skew=+1h".parse().unwrap();
        assert_eq!((s.wrong_sdkappid, s.clock_skew), (true, 3600));
        let e = "wrong-kye".parse::<Simulate>().unwrap_err();
        assert!(e.contains("did you mean `wrong-key`"), "{e}");
        assert!("clock-skew"
            .parse::<Simulate>()
            .unwrap_err()
            .contains("needs an amount"));
        assert!("clock-skew=soon"
            .parse::<Simulate>()
            .unwrap_err()
            .contains("clock-skew=soon"));
        assert!("full-slots=1"
            .parse::<Simulate>()
            .unwrap_err()
            .contains("takes no value"));
    }

    #[test]
    fn each_simulation_changes_only_its_part() {
        let s: Simulate = "wrong-key,wrong-sdkappid,full-slots,clock-skew=10m"
            .parse()
            .unwrap();
        assert_ne!(s.key(Secret::new("k".into())).expose(), "k");
        assert_eq!(s.sdkappid(u32::MAX), 0);
        let mut data = Data::default();
        data.attr_names.insert(3, "city".into());
        s.fill_slots(&mut data);
        assert_eq!(data.attr_names.len(), 10);
        assert_eq!(data.attr_names[&3], "city");
        let epoch = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(s.date(epoch).unwrap(), "Sun, 06 Nov 1994 08:59:37 GMT");
        let none = Simulate::default();
        assert_eq!(none.key(Secret::new("k".into())).expose(), "k");
        assert_eq!(none.sdkappid(7), 7);
        assert_eq!(none.date(epoch), None);
    }
}
