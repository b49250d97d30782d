//! Lambda entry point: see `shared::handlers::me`.

fn main() -> std::process::ExitCode {
    shared::runtime::start(shared::handlers::me::handle)
}
