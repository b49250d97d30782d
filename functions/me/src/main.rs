//! Lambda entry point: see `shared::handlers::me`.

fn main() -> std::process::ExitCode {
    shared::runtime::start_without_storage(shared::handlers::me::handle)
}
