//! The `chronik-chaos` binary: parses the command line and maps outcomes to exit codes
//! (0 passed, 1 scenario failures, 2 the harness itself failed).

use std::process::ExitCode;

fn main() -> ExitCode {
    match std::panic::catch_unwind(chronik_chaos::cli::main) {
        Ok(Ok(code)) => code,
        Ok(Err(err)) => {
            eprintln!("error: {err:#}");
            ExitCode::from(chronik_chaos::cli::EXIT_HARNESS)
        }
        // The panic message is already printed; owned processes were ended while unwinding.
        Err(_) => ExitCode::from(chronik_chaos::cli::EXIT_HARNESS),
    }
}
