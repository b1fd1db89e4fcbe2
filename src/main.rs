//! The `timattr` binary: parse arguments, run, map the outcome to an exit code.

// Loading a million accounts is allocation-bound; mimalloc roughly halves that cost.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

// Before main: the Rust runtime allocates before `main` runs, and that first allocation reserves
// mimalloc's first arena with the settings of that moment (a call at the top of `main` measured
// no effect: 28 MB for the 30,000-user plan, as with no call; BENCHMARKS.md, "Release").
#[ctor::ctor(unsafe)]
fn configure_allocator() {
    timattr::alloc::configure();
}

fn main() -> std::process::ExitCode {
    use clap::Parser;
    match timattr::cli::Cli::try_parse() {
        Ok(cli) => timattr::commands::main(cli),
        Err(e) => timattr::commands::usage(&e),
    }
}
