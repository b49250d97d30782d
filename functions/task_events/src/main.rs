//! Lambda entry point (streamed responses): see `shared::handlers::task_events`.

fn main() -> std::process::ExitCode {
    shared::runtime::start_streaming(shared::handlers::task_events::handle)
}
