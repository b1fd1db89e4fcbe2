//! `timattr usersig`, `emulator`, `schema` and `completions`.

use super::common::{self, Context};
use super::Exit;
use crate::cli::{CompletionsArgs, EmulatorArgs, SchemaArgs, UsersigArgs};
use crate::{Error, Result};

pub fn usersig(ctx: &Context, args: &UsersigArgs) -> Result<Exit> {
    // Without a project file, --sdkappid and --identifier say everything needed.
    let standalone =
        args.sdkappid.is_some() && args.identifier.is_some() && !ctx.global.config.exists();
    let (sdkappid, admin, key) = if standalone {
        let key = common::secret_from_env("TIM_SECRET_KEY")?;
        (args.sdkappid.unwrap_or_default(), String::new(), key)
    } else {
        let settings = ctx.settings()?;
        let key = common::project_secret(&settings)?;
        (
            args.sdkappid.unwrap_or(settings.sdkappid),
            settings.admin,
            key,
        )
    };
    let identifier = args.identifier.as_deref().unwrap_or(&admin);
    if identifier.is_empty() || identifier.len() > crate::model::limits::MAX_ACCOUNT_BYTES {
        return Err(Error::msg(
            "--identifier must be 1 to 32 bytes (an app admin account)",
        ));
    }
    let now = crate::store::now_unix();
    // Printing the sig is this command's whole purpose; it goes to stdout only, never to logs.
    let sig = crate::api::usersig::generate(sdkappid, &key, identifier, args.expire, now);
    print(format!("{sig}\n").as_bytes())
}

pub fn emulator(ctx: &Context, args: &EmulatorArgs) -> Result<Exit> {
    if !(0.0..=1.0).contains(&args.fault_rate) {
        return Err(Error::msg("--fault-rate must be between 0 and 1"));
    }
    let key = common::secret_from_env(&args.secret_env).unwrap_or_else(|_| {
        ctx.note(format!(
            "{} is not set: using the demo key of `endpoint: embedded`.",
            args.secret_env
        ));
        crate::api::Secret::new(crate::api::DEMO_SECRET_KEY.to_owned())
    });
    let cfg = crate::emulator::Config {
        listen: args.listen,
        sdkappid: args.sdkappid,
        admin: args.admin.clone(),
        key,
        latency: std::time::Duration::from_millis(args.latency_ms),
        fault_rate: args.fault_rate,
        data: args.data.clone(),
        rate_limit: 100,
    };
    common::runtime()?
        .block_on(crate::emulator::run_until_ctrl_c(cfg))
        .map_err(|e| Error::msg(format!("emulator: {e}")))?;
    Ok(Exit::Ok)
}

pub fn schema(args: &SchemaArgs) -> Result<Exit> {
    let schema = match args.kind {
        crate::cli::SchemaKind::Project => crate::schema::project(),
        crate::cli::SchemaKind::Users => crate::schema::users(),
    };
    let text = serde_json::to_string_pretty(&schema).expect("a schema serializes");
    print(format!("{text}\n").as_bytes())
}

pub fn completions(args: &CompletionsArgs) -> Result<Exit> {
    use clap::CommandFactory;
    let mut cmd = crate::cli::Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "timattr", &mut script);
    print(&script)
}

/// Data to stdout; a closed pipe (`| head`) is not an error.
fn print(bytes: &[u8]) -> Result<Exit> {
    use std::io::Write;
    let mut out = common::stdout();
    common::output_result(out.write_all(bytes).and_then(|()| out.flush()))?;
    Ok(Exit::Ok)
}
