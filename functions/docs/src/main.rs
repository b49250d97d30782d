//! Lambda entry point: see `shared::openapi::docs`.

fn main() -> std::process::ExitCode {
    shared::runtime::start_public(shared::openapi::docs::handle)
}
