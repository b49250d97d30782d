//! Lambda entry point: see `shared::openapi::docs`.

fn main() -> std::process::ExitCode {
    shared::runtime::start_without_storage(shared::openapi::docs::handle)
}
