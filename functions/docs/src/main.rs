//! Lambda entry point: see `shared::handlers::docs`.

fn main() -> std::process::ExitCode {
    shared::runtime::start(shared::handlers::docs::handle)
}
