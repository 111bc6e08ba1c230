//! A trickling upload: `POST /echo` announcing the whole body, most of it sent at once, then
//! one byte per tick for a while, then the rest; the app's answer is read and checked.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Serialize;

use crate::client;

/// Writes may wait for a proxy that reads slowly; the answer waits for 2 uWSGI workers
/// hashing hundreds of megabytes in turn.
const IO_TIMEOUT: Duration = Duration::from_secs(60);

/// The shape of every upload of a scenario.
#[derive(Debug, Clone)]
pub struct Trickle {
    /// The Content-Length announced (and in the end sent).
    pub total: usize,
    /// Sent at once after the head.
    pub quick: usize,
    pub every: Duration,
    /// How long one byte per `every` goes on before the rest is sent.
    pub lasting: Duration,
}

/// What all the uploads of a scenario saw.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Uploads {
    pub clients: usize,
    /// Answered 200 with the app reporting the whole body.
    pub whole: usize,
    /// Answered otherwise (another status, or the app saw another length).
    pub refused: usize,
    pub errors: usize,
    pub first_problem: Option<String>,
    /// When the last upload had sent its quick part, from the first connect (s).
    pub quick_parts_done_s: f64,
}

/// One upload's outcome: `Ok(())` for the whole body echoed back.
type Outcome = (Result<()>, Duration);

/// Starts one upload; `started` is the common start, for the quick-part timing.
pub fn spawn(
    addr: SocketAddr,
    shape: Trickle,
    body: Arc<Vec<u8>>,
    started: Instant,
) -> Result<JoinHandle<Outcome>> {
    thread::Builder::new()
        .name("uploader".into())
        .stack_size(256 * 1024)
        .spawn(move || {
            let mut quick_done = Duration::ZERO;
            let result = upload(addr, &shape, &body, || quick_done = started.elapsed());
            (result, quick_done)
        })
        .context("spawn an uploader")
}

/// Joins the uploads and sums what they saw.
pub fn join(uploads: Vec<JoinHandle<Outcome>>) -> Uploads {
    let mut out = Uploads {
        clients: uploads.len(),
        ..Uploads::default()
    };
    for handle in uploads {
        let (result, quick_done) = handle
            .join()
            .unwrap_or_else(|_| (Err(anyhow::anyhow!("uploader panicked")), Duration::ZERO));
        out.quick_parts_done_s = out.quick_parts_done_s.max(quick_done.as_secs_f64());
        match result {
            Ok(()) => out.whole += 1,
            Err(err) => {
                if err.downcast_ref::<Refused>().is_some() {
                    out.refused += 1;
                } else {
                    out.errors += 1;
                }
                out.first_problem.get_or_insert_with(|| format!("{err:#}"));
            }
        }
    }
    out
}

/// The proxy or the app answered, but not with the whole body echoed.
#[derive(Debug)]
struct Refused(String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

fn upload(
    addr: SocketAddr,
    shape: &Trickle,
    body: &[u8],
    mut quick_done: impl FnMut(),
) -> Result<()> {
    let total = shape.total.min(body.len());
    let quick = shape.quick.min(total);
    let mut stream = client::connect(addr, IO_TIMEOUT)?;
    let head = format!(
        "POST /echo HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/octet-stream\r\n\
         Content-Length: {total}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).context("write head")?;
    stream.write_all(&body[..quick]).context("write body")?;
    quick_done();
    let mut sent = quick;
    let until = Instant::now() + shape.lasting;
    while sent < total && Instant::now() < until {
        thread::sleep(
            shape
                .every
                .min(until.saturating_duration_since(Instant::now())),
        );
        stream
            .write_all(&body[sent..sent + 1])
            .context("trickle a byte")?;
        sent += 1;
    }
    stream
        .write_all(&body[sent..total])
        .context("write the rest")?;
    let answer = client::read_answer(&mut stream).context("read the answer")?;
    let text = String::from_utf8_lossy(&answer.body);
    let echoed = text
        .split("\"length\":")
        .nth(1)
        .and_then(|rest| rest.trim_start().split([',', '}']).next())
        .and_then(|n| n.trim().parse::<usize>().ok());
    if answer.status != 200 || echoed != Some(total) {
        let shown: String = text.chars().take(120).collect();
        bail!(Refused(format!(
            "status {}, the app got {echoed:?} of {total} bytes: {shown}",
            answer.status
        )));
    }
    Ok(())
}
