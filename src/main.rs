//! The `timattr` binary: parse arguments, run, map the outcome to an exit code.

// Loading a million accounts is allocation-bound; mimalloc roughly halves that cost.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    // Before anything allocates (the first allocation reserves mimalloc's arena).
    timattr::alloc::configure();
    use clap::Parser;
    match timattr::cli::Cli::try_parse() {
        Ok(cli) => timattr::commands::main(cli),
        Err(e) => timattr::commands::usage(&e),
    }
}
