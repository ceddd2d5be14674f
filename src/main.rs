//! The `rebootctl` binary: parse the command line, run it, exit with its code.

fn main() -> std::process::ExitCode {
    std::process::ExitCode::from(rebootctl::cli::main(std::env::args().collect()))
}
