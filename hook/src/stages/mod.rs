//! The stages of `amd-container-hook`, all in the one process the runtime
//! starts: `prestart` / `createRuntime` (live injection, [`live`]),
//! `precreate` (Podman config filter, [`precreate`]), `poststop` (the GPU
//! tracker's release, [`poststop`]) and, registered by a CDI spec of ours,
//! the same stages with `--cdi` ([`cdi`]).
//!
//! Contract: every stage reads its input once and decides from the
//! container's environment alone whether there is anything to do; a
//! container that asks for no GPU costs a read of stdin and of `config.json`
//! (precreate: its config goes back byte for byte), without the config file,
//! the log file or libudev. Errors are reported once, here, on stderr (and in
//! the log file once a request was seen); the return value is the exit status.

mod cdi;
mod error;
mod live;
mod policy;
mod poststop;
mod precreate;

use crate::{container, logging, Args, Stage, USAGE};
use error::HookError;
use std::io::Read;

/// Runs `args.stage` with the input on stdin; returns the exit status.
pub fn run(args: &Args) -> u8 {
    logging::init();
    let result = match args.stage {
        Some(Stage::Prestart | Stage::CreateRuntime) if args.cdi => {
            read_stdin().and_then(|input| Ok(cdi::run(&args.config, &input)?))
        }
        Some(Stage::Poststop) if args.cdi => read_stdin().and_then(|input| {
            let state = container::read_state(&input)?;
            Ok(cdi::release(&args.config, &state)?)
        }),
        Some(Stage::Prestart | Stage::CreateRuntime) => {
            read_stdin().and_then(|input| live::run(&args.config, &input))
        }
        Some(Stage::Precreate) => {
            read_stdin().and_then(|input| precreate::run(&args.config, input))
        }
        Some(Stage::Poststop) => read_stdin().and_then(|input| poststop::run(&args.config, &input)),
        None => Err(HookError::Usage),
    };
    match result {
        Ok(()) => 0,
        Err(HookError::Usage) => {
            eprintln!("{USAGE}");
            2
        }
        Err(e) => {
            log::error!("{e}");
            1
        }
    }
}

fn read_stdin() -> Result<Vec<u8>, HookError> {
    let mut input = Vec::new();
    std::io::stdin()
        .read_to_end(&mut input)
        .map_err(HookError::Stdin)?;
    Ok(input)
}
