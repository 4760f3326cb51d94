//! The `quill` binary: parse the command line and hand over to `quill::cli`.

use std::process::ExitCode;

fn main() -> ExitCode {
    quill::cli::main()
}
