//! `timattr state list | show | export | restore | history`.

use std::io::Write;

use super::common::{self, Context};
use super::Exit;
use crate::cli::StateCommand;
use crate::model::Names;
use crate::store::Store;
use crate::{Error, Result};

fn existing(ctx: &Context) -> Result<(crate::settings::Settings, Store)> {
    let settings = ctx.settings()?;
    let store = common::open_read_only_store(&settings)?.ok_or_else(|| {
        Error::msg(format!(
            "there is no state at {} yet: run `timattr apply` or `timattr import` first, or `timattr state restore FILE`",
            settings.state_dir.display()
        ))
    })?;
    Ok((settings, store))
}

pub fn state(ctx: &Context, cmd: &StateCommand) -> Result<Exit> {
    match cmd {
        StateCommand::List => {
            let (_, store) = existing(ctx)?;
            let mut out = common::stdout();
            let mut written = Ok(());
            store.scan(|account, _| {
                if written.is_ok() {
                    written = writeln!(out, "{account}");
                }
                Ok(())
            })?;
            common::output_result(written.and_then(|()| out.flush()))?;
        }
        StateCommand::Show { account } => {
            let (settings, store) = existing(ctx)?;
            let mut names = Names::new(&settings.attributes);
            let attrs = store.account(account, &mut names)?.ok_or_else(|| {
                Error::msg(format!(
                    "account {account:?} is not managed (it is not in the state)"
                ))
            })?;
            let map: serde_json::Map<String, serde_json::Value> = attrs
                .iter()
                .map(|(n, v)| (names.get(n).to_owned(), v.into()))
                .collect();
            let mut out = common::stdout();
            let written = serde_json::to_writer_pretty(
                &mut out,
                &serde_json::json!({
                    "account": account,
                    "attrs": map,
                }),
            )
            .map_err(std::io::Error::from)
            .and_then(|()| writeln!(out))
            .and_then(|()| out.flush());
            common::output_result(written)?;
        }
        StateCommand::Export { out } => {
            let (_, store) = existing(ctx)?;
            let count = match out {
                Some(path) => {
                    let mut count = 0;
                    crate::files::write_atomically(path, |w| {
                        count = store.export(w)?;
                        Ok(())
                    })
                    .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))?;
                    count
                }
                None => {
                    let mut w = common::stdout();
                    let n = store
                        .export(&mut w)
                        .map_err(|e| Error::io("cannot write the export", e))?;
                    common::output_result(w.flush())?;
                    n
                }
            };
            let meta = store.meta();
            ctx.note(format!(
                "Exported {count} accounts (lineage {}, serial {}).",
                meta.lineage, meta.serial
            ));
        }
        StateCommand::Restore { file, force } => {
            let settings = ctx.settings()?;
            let input = std::fs::File::open(file)
                .map_err(|e| Error::io(format!("cannot read {}", file.display()), e))?;
            // All of the file is read and checked before the store is opened (or created).
            let export = crate::store::read_export(input)?;
            crate::store::check_app(&export.header, settings.sdkappid, settings.endpoint.host())?;
            // Restoring is how a lost store comes back: create it when missing.
            let mut store = Store::open(
                &settings.state_dir,
                settings.sdkappid,
                settings.endpoint.host(),
            )?;
            let header = store.restore_export(&export, *force)?;
            ctx.note(format!(
                "Restored {} accounts (lineage {}, serial {}).",
                header.accounts, header.lineage, header.serial
            ));
        }
        StateCommand::History => {
            let (_, store) = existing(ctx)?;
            let mut out = common::stdout();
            let mut text = String::from("time                  serial  operation  status       set  removed  names  requests  retries\n");
            for h in store.history()? {
                let time = humantime::format_rfc3339_seconds(
                    std::time::UNIX_EPOCH + std::time::Duration::from_secs(h.time),
                );
                text.push_str(&format!(
                    "{time}  {:>6}  {:<9}  {:<11}  {:>4}  {:>7}  {:>5}  {:>8}  {:>7}\n",
                    h.serial,
                    h.operation,
                    h.status,
                    h.accounts_set,
                    h.accounts_removed,
                    h.names_configured,
                    h.requests,
                    h.retries
                ));
            }
            common::output_result(out.write_all(text.as_bytes()).and_then(|()| out.flush()))?;
        }
    }
    Ok(Exit::Ok)
}
