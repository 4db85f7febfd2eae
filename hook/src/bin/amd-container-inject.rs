//! `amd-container-inject`: the hook's real work, exec'd by `amd-container-hook`
//! for containers that request GPUs (same arguments, same stdin).

fn main() -> std::process::ExitCode {
    let args = amd_container_hook::Args::parse(std::env::args().skip(1));
    amd_container_hook::stages::run(&args)
}
