//! `timattr emulator`: the local emulator of the API family, until stopped.

use super::{Context, Exit};
use crate::cli::EmulatorArgs;
use crate::ops::connect;
use crate::{Error, Result};

pub fn emulator(ctx: &Context, args: &EmulatorArgs) -> Result<Exit> {
    if !(0.0..=1.0).contains(&args.fault_rate) {
        return Err(Error::msg("--fault-rate must be between 0 and 1"));
    }
    // Unset: the demo key. Set but unusable (whitespace, not UTF-8): an error, not the demo key.
    let key = if std::env::var_os(&args.secret_env).is_none_or(|v| v.is_empty()) {
        ctx.note(format!(
            "{} is not set: using the demo key of `endpoint: embedded`.",
            args.secret_env
        ));
        crate::api::Secret::new(crate::api::DEMO_SECRET_KEY.to_owned())
    } else {
        connect::secret_from_env(&args.secret_env)?
    };
    let cfg = crate::emulator::Config {
        listen: args.listen,
        sdkappid: args.sdkappid,
        admin: args.admin.clone(),
        key,
        latency: std::time::Duration::from_millis(args.latency_ms),
        fault_rate: args.fault_rate,
        data: args.data.clone(),
        rate_limit: 100,
        setup: crate::emulator::Setup {
            slots: args.slots.iter().cloned().collect(),
            registration_ids: args.registration_ids.clone(),
            missing: args.missing_accounts.clone(),
        },
        simulate: args.simulate.clone().unwrap_or_default(),
        read_only_data: false,
    };
    connect::runtime()?
        .block_on(crate::emulator::run_until_ctrl_c(cfg))
        .map_err(|e| Error::msg(format!("emulator: {e}")))?;
    Ok(Exit::Ok)
}
