//! The `timattr` binary: parse arguments, run, map the outcome to an exit code.

fn main() -> std::process::ExitCode {
    use clap::Parser;
    let cli = timattr::cli::Cli::parse();
    timattr::commands::main(cli)
}
