//! `timattr usersig`: a UserSig made from the secret, for debugging with curl.

use std::io::Write;

use super::{Context, Exit};
use crate::cli::UsersigArgs;
use crate::ops::connect;
use crate::render::output;
use crate::{Error, Result};

pub fn usersig(ctx: &Context, args: &UsersigArgs) -> Result<Exit> {
    // Without a project file, --sdkappid and --identifier say everything needed.
    let standalone =
        args.sdkappid.is_some() && args.identifier.is_some() && !ctx.global.config.exists();
    let (sdkappid, admin, key) = if standalone {
        let key = connect::secret_from_env("TIM_SECRET_KEY")?;
        (args.sdkappid.unwrap_or_default(), String::new(), key)
    } else {
        let settings = ctx.settings()?;
        let key = connect::project_secret(&settings)?;
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
    let now = crate::clock::now_unix();
    // Printing the sig is this command's whole purpose; it goes to stdout only, never to logs.
    let sig = crate::api::usersig::generate(sdkappid, &key, identifier, args.expire, now);
    output::to_stdout(|out| writeln!(out, "{sig}"))?;
    Ok(Exit::Ok)
}
