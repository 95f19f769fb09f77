//! The `init` binary: PID 1 of every Kiln node. All logic lives in the library.

fn main() -> std::process::ExitCode {
    kiln_init::main()
}
