//! Lambda entry point: see `shared::handlers::replace_task`.

fn main() -> std::process::ExitCode {
    shared::runtime::start(shared::handlers::replace_task::handle)
}
