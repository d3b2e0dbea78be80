//! The `sluice` binary: a thin shim over the library so that everything is testable.

fn main() -> std::process::ExitCode {
    sluice::cli::main()
}
