//! `crossrank rerank`'s input and output. Candidates are read as they stream in. One per line, a
//! long candidate is held in memory only as far as scoring reads it (`Keep`: the tokens a pair
//! keeps, or at most 256 windows); the rest of its text waits in a temporary file until the output
//! echoes it. So a 50 MB document costs what a 1 KB one does. A JSON array is parsed whole
//! (serde_json has no streaming strings).

use std::fs::File;
use std::io::{BufRead, Read, Seek, SeekFrom, Write};
use std::path::PathBuf;

use crossrank::{Error, GrowingPrefix, RankedDocument, Result};

/// The most a `rerank` input (one candidate list) may hold: endless or huge input (`/dev/zero`)
/// ends with a named error instead of growing until killed.
pub const MAX_INPUT_BYTES: u64 = 256 << 20;

/// How much is read at a time: large enough that a 50 MB line is a few dozen reads.
pub const READ_BYTES: usize = 1 << 20;

/// A line is held whole up to this many bytes; past it, in prefixes growing ×4 ([`GrowingPrefix`])
/// until the `Keep` says a prefix holds everything a pair reads.
const FIRST_HELD_BYTES: usize = 1 << 20;

/// Whether a prefix of a candidate holds everything scoring reads (`Reranker::prefix_suffices`).
pub type Keep<'a> = &'a dyn Fn(&str) -> Result<bool>;

/// The candidates of one `rerank` call.
pub struct Candidates {
    /// The text each candidate is scored on: all of it, or a prefix that tokenises as all of it.
    pub texts: Vec<String>,
    /// The first stage's scores, when every candidate (a JSON object) has one.
    pub first_stage: Option<Vec<f64>>,
    /// Where the whole text of each candidate held only in part is, in the spill file.
    spilled: Vec<Option<(u64, u64)>>,
    spill: Option<Spill>,
}

/// How a `rerank` input is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum InputFormat {
    /// A JSON array when the first non-blank character is `[`, else lines.
    Auto,
    /// One candidate per non-empty line, whatever the first character (a line may start with `[`).
    Lines,
    /// A JSON array (of strings, or {"text": …, "score": …} objects).
    Json,
}

/// Reads candidates from `reader` (named `name` in errors): a JSON array (of strings, or
/// {"text": …, "score": …} objects), or one candidate per non-empty line, as `format` says.
pub fn read(reader: impl BufRead, name: &str, keep: Keep, format: InputFormat) -> Result<Candidates> {
    let mut reader = Bounded { inner: reader.take(MAX_INPUT_BYTES + 1), name };
    // JSON or lines: the first byte that is not whitespace (blank lines before it are skipped).
    let starts_with_bracket = loop {
        let buffer = reader.inner.fill_buf().map_err(|e| io_error(name, e))?;
        match buffer.iter().position(|b| !b.is_ascii_whitespace()) {
            Some(first) => break buffer[first] == b'[',
            None if buffer.is_empty() => break false,
            None => match buffer.iter().rposition(|&b| b == b'\n') {
                Some(last) => reader.inner.consume(last + 1),
                None => break false, // spaces without a newline yet: a (blank) line of their own
            },
        }
    };
    let json = match format {
        InputFormat::Auto => starts_with_bracket,
        InputFormat::Lines => false,
        InputFormat::Json if starts_with_bracket => true,
        InputFormat::Json => return Err(Error::invalid(format!("{name} is not a JSON array (--input-format json): it must start with `[`"))),
    };
    let mut candidates = Candidates { texts: Vec::new(), first_stage: None, spilled: Vec::new(), spill: None };
    if json {
        let first_stage = crate::json_candidates::read_array(&mut reader, keep, &mut candidates)?;
        candidates.first_stage = first_stage;
        return Ok(candidates);
    }
    while let Some(line) = reader.line(keep, &mut candidates.spill)? {
        if !line.held.trim().is_empty() || line.spilled.is_some() {
            candidates.push(line);
        }
    }
    Ok(candidates)
}

impl Candidates {
    pub(crate) fn push(&mut self, text: Text) {
        self.texts.push(text.held);
        self.spilled.push(text.spilled);
    }

    pub(crate) fn spill(&mut self) -> &mut Option<Spill> {
        &mut self.spill
    }

    /// Writes the ranking as a pretty JSON array, each result with its candidate's whole text as
    /// `document` (streamed from the spill file for a candidate held only in part).
    pub fn write_ranking(&mut self, ranked: &[RankedDocument], out: &mut impl Write) -> Result<()> {
        let io = |e: std::io::Error| Error::Io { file: "<stdout>".into(), message: e.to_string() };
        let json = |e: serde_json::Error| Error::Compute(e.to_string());
        if ranked.is_empty() {
            return writeln!(out, "[]").map_err(io);
        }
        writeln!(out, "[").map_err(io)?;
        for (position, result) in ranked.iter().enumerate() {
            // The result's own fields, pretty-printed one level deeper, then the document.
            let fields = serde_json::to_string_pretty(result).map_err(json)?;
            let fields = fields.trim_end().strip_suffix('}').unwrap_or(&fields).trim_end();
            write!(out, "  {},\n    \"document\": ", fields.replace('\n', "\n  ")).map_err(io)?;
            match (self.spilled[result.index], self.spill.as_mut()) {
                (Some((start, length)), Some(spill)) => spill.write_json_string(start, length, out)?,
                _ => serde_json::to_writer(&mut *out, &self.texts[result.index]).map_err(json)?,
            }
            write!(out, "\n  }}{}\n", if position + 1 < ranked.len() { "," } else { "" }).map_err(io)?;
        }
        writeln!(out, "]").map_err(io)
    }
}

/// A candidate's text as read: the part held in memory, and where all of it is when that is only a prefix.
pub(crate) struct Text {
    held: String,
    spilled: Option<(u64, u64)>,
}

/// A candidate's text as it arrives in pieces, held in memory only as far as `keep` needs: past
/// 1 MiB, in prefixes growing ×4 until `keep` says one suffices; then all of it goes to the spill
/// file and only that prefix stays. UTF-8 is checked across the pieces.
pub(crate) struct TextSink<'a> {
    keep: Keep<'a>,
    held: Vec<u8>,
    prefix: GrowingPrefix,
    spilled: Option<(u64, u64)>,
    utf8: Utf8Check,
}

impl<'a> TextSink<'a> {
    pub(crate) fn new(keep: Keep<'a>) -> Self {
        Self { keep, held: Vec::new(), prefix: GrowingPrefix::new(FIRST_HELD_BYTES), spilled: None, utf8: Utf8Check::default() }
    }

    pub(crate) fn push(&mut self, bytes: &[u8], spill: &mut Option<Spill>, name: &str) -> Result<()> {
        self.utf8.feed(bytes).map_err(|()| not_utf8(name))?;
        if let (Some((_, length)), Some(file)) = (&mut self.spilled, spill.as_mut()) {
            file.append(bytes)?;
            *length += bytes.len() as u64;
            return Ok(());
        }
        self.held.extend_from_slice(bytes);
        // Past each limit, all that is held is the prefix checked.
        if self.prefix.check(self.held.len(), |_| valid_prefix(&self.held), self.keep)?.is_some() {
            // The prefix suffices: all of the text goes to the spill file; the prefix (cut at a
            // character boundary) stays for the scoring.
            let file = match spill {
                Some(file) => file,
                None => spill.insert(Spill::create()?),
            };
            let start = file.append(&self.held)?;
            self.spilled = Some((start, self.held.len() as u64));
            self.held.truncate(valid_prefix(&self.held).len());
            self.held.shrink_to_fit();
        }
        Ok(())
    }

    /// The text; `strip_cr` drops a final `\r` (a line's `\r\n` end).
    pub(crate) fn finish(mut self, spill: &mut Option<Spill>, name: &str, strip_cr: bool) -> Result<Text> {
        self.utf8.finish().map_err(|()| not_utf8(name))?;
        match (&mut self.spilled, spill.as_mut()) {
            (Some((_, length)), Some(file)) => {
                if strip_cr && file.last_byte()? == Some(b'\r') {
                    *length -= 1;
                }
            }
            _ => {
                if strip_cr && self.held.ends_with(b"\r") {
                    self.held.pop();
                }
            }
        }
        let held = String::from_utf8(self.held).map_err(|_| not_utf8(name))?;
        Ok(Text { held, spilled: self.spilled })
    }
}

fn not_utf8(name: &str) -> Error {
    Error::invalid(format!("{name} is not UTF-8"))
}

/// The input, counted against [`MAX_INPUT_BYTES`].
pub(crate) struct Bounded<'a, R> {
    pub(crate) inner: std::io::Take<R>,
    pub(crate) name: &'a str,
}

pub(crate) fn io_error(name: &str, e: std::io::Error) -> Error {
    Error::Io { file: name.into(), message: e.to_string() }
}

impl<R: BufRead> Bounded<'_, R> {
    pub(crate) fn too_long(&self) -> Option<Error> {
        (self.inner.limit() == 0).then(|| {
            Error::invalid(format!(
                "{} holds more than {} MiB of candidates: rerank reads one candidate list (split the input)",
                self.name,
                MAX_INPUT_BYTES >> 20
            ))
        })
    }

    /// The next line (without its `\n` or `\r\n`), or `None` at the end of the input.
    fn line(&mut self, keep: Keep, spill: &mut Option<Spill>) -> Result<Option<Text>> {
        let mut sink = TextSink::new(keep);
        let mut any = false;
        loop {
            let name = self.name;
            let buffer = self.inner.fill_buf().map_err(|e| io_error(name, e))?;
            if buffer.is_empty() {
                if let Some(error) = self.too_long() {
                    return Err(error);
                }
                break;
            }
            any = true;
            let newline = buffer.iter().position(|&b| b == b'\n');
            let chunk = &buffer[..newline.unwrap_or(buffer.len())];
            sink.push(chunk, spill, name)?;
            let used = chunk.len() + usize::from(newline.is_some());
            self.inner.consume(used);
            if newline.is_some() {
                break;
            }
        }
        if !any {
            return Ok(None);
        }
        sink.finish(spill, self.name, true).map(Some)
    }
}

/// The longest prefix of `bytes` that is whole UTF-8 characters (`bytes` were checked as they came).
fn valid_prefix(bytes: &[u8]) -> &str {
    match std::str::from_utf8(bytes) {
        Ok(text) => text,
        // The checked bytes can only end inside a character; valid_up_to is a boundary.
        Err(error) => std::str::from_utf8(&bytes[..error.valid_up_to()]).unwrap_or_default(),
    }
}

/// UTF-8 checked across chunk boundaries: a character cut by a chunk's end is completed by the next.
#[derive(Default)]
struct Utf8Check {
    carry: Vec<u8>,
}

impl Utf8Check {
    fn feed(&mut self, chunk: &[u8]) -> std::result::Result<(), ()> {
        // At most 3 carried bytes before one buffer's worth: a small copy, not the line.
        self.carry.extend_from_slice(chunk);
        match std::str::from_utf8(&self.carry) {
            Ok(_) => self.carry.clear(),
            Err(error) if error.error_len().is_none() => {
                self.carry.drain(..error.valid_up_to());
            }
            Err(_) => return Err(()),
        }
        Ok(())
    }

    fn finish(&self) -> std::result::Result<(), ()> {
        if self.carry.is_empty() { Ok(()) } else { Err(()) }
    }
}

/// A temporary file holding the whole text of candidates held only in part. Unlinked as soon as
/// it is open where the system allows (nothing is left behind even on kill -9), else at drop.
pub(crate) struct Spill {
    file: File,
    path: PathBuf,
    length: u64,
}

impl Spill {
    fn create() -> Result<Self> {
        static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("crossrank-candidates-{}-{n}", std::process::id()));
        let io = |e: std::io::Error| Error::Io { file: path.display().to_string(), message: e.to_string() };
        let file = std::fs::OpenOptions::new().read(true).write(true).create_new(true).open(&path).map_err(io)?;
        #[cfg(unix)]
        let _ = std::fs::remove_file(&path);
        Ok(Self { file, path, length: 0 })
    }

    fn io(&self, e: std::io::Error) -> Error {
        Error::Io { file: self.path.display().to_string(), message: e.to_string() }
    }

    /// Appends `bytes`; returns where they start.
    fn append(&mut self, bytes: &[u8]) -> Result<u64> {
        let start = self.length;
        self.file.seek(SeekFrom::Start(start)).and_then(|_| self.file.write_all(bytes)).map_err(|e| self.io(e))?;
        self.length += bytes.len() as u64;
        Ok(start)
    }

    fn last_byte(&mut self) -> Result<Option<u8>> {
        if self.length == 0 {
            return Ok(None);
        }
        let mut byte = [0u8];
        self.file.seek(SeekFrom::Start(self.length - 1)).and_then(|_| self.file.read_exact(&mut byte)).map_err(|e| self.io(e))?;
        Ok(Some(byte[0]))
    }

    /// Writes the text at `start..start + length` (checked UTF-8 when it was read) as one JSON string.
    fn write_json_string(&mut self, start: u64, length: u64, out: &mut impl Write) -> Result<()> {
        let stdout = |e: std::io::Error| Error::Io { file: "<stdout>".into(), message: e.to_string() };
        self.file.seek(SeekFrom::Start(start)).map_err(|e| self.io(e))?;
        let mut left = length;
        let mut buffer = vec![0u8; 1 << 16];
        let mut carry = 0; // bytes of a character cut by the last read, at the buffer's start
        out.write_all(b"\"").map_err(stdout)?;
        while left > 0 || carry > 0 {
            let want = ((buffer.len() - carry) as u64).min(left) as usize;
            self.file.read_exact(&mut buffer[carry..carry + want]).map_err(|e| self.io(e))?;
            left -= want as u64;
            let filled = carry + want;
            let text = valid_prefix(&buffer[..filled]);
            let escaped = serde_json::to_string(text).map_err(|e| Error::Compute(e.to_string()))?;
            out.write_all(&escaped.as_bytes()[1..escaped.len() - 1]).map_err(stdout)?;
            let used = text.len();
            if used == 0 && left == 0 {
                break; // only a cut character left: cannot happen for checked text
            }
            buffer.copy_within(used..filled, 0);
            carry = filled - used;
        }
        out.write_all(b"\"").map_err(stdout)
    }
}
