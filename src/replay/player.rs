//! `portcullis replay SESSION [--speed X] [--max-idle SECONDS]`: plays a
//! session's output back with its original timing.
//!
//! Invariant: output bytes are written unchanged and in recorded order
//! (only on a terminal do the bare line feeds of a session without a PTY
//! get the CR a terminal would have shown); a pause longer than
//! `--max-idle` is cut to it, then all time is divided by `--speed`. When
//! stdout is not a terminal the bytes are all that is written to it; on a
//! terminal, `q` or Ctrl-C stops playback and the terminal is restored
//! however playback ends (see [`super::console`]).

use crate::audit::Transcript;
use std::io::{self, IsTerminal, Write};
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use super::cli::{read_transcript, ReplayError};
use super::console::{Console, Keys};
use super::recording::{FrameKind, Recording};

/// A wait longer than this is cut to it (a damaged clock in the store must
/// not hang the player for years).
const MAX_WAIT: Duration = Duration::from_secs(24 * 3600);
/// How often the progress line is redrawn while waiting.
const TICK: Duration = Duration::from_millis(100);

/// Arguments of `portcullis replay`.
#[derive(Debug, Clone, clap::Args)]
pub struct ReplayArgs {
    /// The session to play
    pub session: i64,
    /// Playback speed: 2 plays twice as fast, 0.5 at half speed
    #[arg(long, default_value_t = 1.0, value_parser = parse_speed)]
    pub speed: f64,
    /// Longest pause played, in seconds; longer ones are cut to it (`inf` keeps them)
    #[arg(long, default_value_t = 2.0, value_parser = parse_max_idle)]
    pub max_idle: f64,
    /// With `[cluster]`: the replica that recorded the session, when it is
    /// not this one (read from the archive)
    #[arg(long)]
    pub replica: Option<String>,
}

fn parse_speed(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if (0.001..=1_000_000.0).contains(&x) => Ok(x),
        _ => Err(format!("`{s}` is not a speed between 0.001 and 1000000")),
    }
}

fn parse_max_idle(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if x >= 0.0 => Ok(x),
        _ => Err(format!("`{s}` is not a number of seconds (or `inf`)")),
    }
}

/// One thing to do at `at` after playback starts; `recorded_us` is the
/// position in the recording (pauses cut) it corresponds to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Step<'t> {
    pub at: Duration,
    pub recorded_us: f64,
    pub kind: FrameKind<'t>,
}

/// When each output and resize is played, with pauses measured between
/// output frames (typing does not count as activity on the screen).
pub fn schedule<'t>(recording: &Recording<'t>, speed: f64, max_idle: f64) -> Vec<Step<'t>> {
    let max_idle_us = max_idle * 1e6;
    let mut previous = 0i64;
    let mut recorded_us = 0f64;
    let mut steps = Vec::new();
    for frame in &recording.frames {
        if matches!(frame.kind, FrameKind::Input(_) | FrameKind::Marker(_)) {
            continue;
        }
        let gap = frame.offset_us.saturating_sub(previous).max(0) as f64;
        recorded_us += gap.min(max_idle_us);
        previous = frame.offset_us;
        // `as` saturates: a huge or NaN value cannot wrap or panic.
        let at_us = (recorded_us / speed).round() as u64;
        let at = Duration::from_micros(at_us).min(MAX_WAIT);
        steps.push(Step {
            at,
            recorded_us,
            kind: frame.kind,
        });
    }
    steps
}

/// `portcullis replay`
pub fn replay(store: &Path, args: &ReplayArgs) -> Result<(), ReplayError> {
    replay_transcript(&read_transcript(store, args.session)?, args)
}

/// `portcullis replay` of a transcript read elsewhere (the archive).
pub fn replay_transcript(transcript: &Transcript, args: &ReplayArgs) -> Result<(), ReplayError> {
    let recording = Recording::of(transcript);
    let steps = schedule(&recording, args.speed, args.max_idle);
    let total_us = steps.last().map_or(0.0, |s| s.recorded_us);
    let mut err = io::stderr();
    if !io::stdout().is_terminal() {
        let played = play_plain(&steps, &mut io::stdout().lock(), &mut err)?;
        writeln!(
            err,
            "replay: session {}: {played} bytes of output, {:.1}s of recording",
            args.session,
            total_us / 1e6
        )?;
        return Ok(());
    }
    let mut console = Console::open(recording.terminal.as_ref()).map_err(ReplayError::Terminal)?;
    let (position, stopped) = play_on_terminal(&steps, &mut console, args, total_us)?;
    drop(console);
    let how = if stopped { "stopped" } else { "finished" };
    writeln!(
        err,
        "replay: session {} {how} at {:.1}s of {:.1}s",
        args.session,
        position / 1e6,
        total_us / 1e6
    )?;
    Ok(())
}

/// Plays on the terminal until the end or `q`/Ctrl-C; returns the position
/// reached in the recording and whether playback was stopped.
fn play_on_terminal(
    steps: &[Step<'_>],
    console: &mut Console,
    args: &ReplayArgs,
    total_us: f64,
) -> Result<(f64, bool), ReplayError> {
    let title = format!("replay {}", args.session);
    let keys = Keys::watch();
    let start = Instant::now();
    let (mut position, mut position_at) = (0.0, Duration::ZERO);
    for step in steps {
        loop {
            if keys.quit_requested() {
                return Ok((position, true));
            }
            let elapsed = start.elapsed();
            if elapsed >= step.at {
                break;
            }
            // Between frames the recording's clock runs on at the playback
            // speed, up to the next frame.
            let running = elapsed.saturating_sub(position_at).as_secs_f64() * args.speed * 1e6;
            let now = (position + running).min(step.recorded_us);
            console.status(&progress(&title, now, total_us, args.speed));
            thread::sleep(step.at.saturating_sub(elapsed).min(TICK));
        }
        match step.kind {
            FrameKind::Output(data) => console.write(data).map_err(ReplayError::Terminal)?,
            FrameKind::Resize { cols, rows } => console.note_resize(cols, rows),
            FrameKind::Input(_) | FrameKind::Marker(_) => {}
        }
        (position, position_at) = (step.recorded_us, step.at);
        console.status(&progress(&title, position, total_us, args.speed));
    }
    Ok((position, keys.quit_requested()))
}

fn progress(title: &str, at_us: f64, total_us: f64, speed: f64) -> String {
    format!(
        " {title}  {:.1}s / {:.1}s  x{speed}  q quits ",
        at_us / 1e6,
        total_us / 1e6
    )
}

/// Writes the output with its timing to a pipe or file; progress lines go
/// to `progress` at most once a second. Returns the bytes written.
fn play_plain(
    steps: &[Step<'_>],
    out: &mut dyn Write,
    progress: &mut dyn Write,
) -> io::Result<u64> {
    let start = Instant::now();
    let mut next_report = Duration::from_secs(1);
    let mut written = 0u64;
    for step in steps {
        let FrameKind::Output(data) = step.kind else {
            continue;
        };
        if let Some(wait) = step.at.checked_sub(start.elapsed()) {
            thread::sleep(wait);
        }
        match out.write_all(data).and_then(|()| out.flush()) {
            Ok(()) => written += data.len() as u64,
            // The reader went away (`replay | head`): nothing left to do.
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(written),
            Err(e) => return Err(e),
        }
        if start.elapsed() >= next_report {
            writeln!(progress, "replay: {:.1}s", step.recorded_us / 1e6)?;
            next_report += Duration::from_secs(1);
        }
    }
    Ok(written)
}
