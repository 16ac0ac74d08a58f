//! `crossrank rerank`'s JSON input, read as it streams in: an array of strings, or of objects with
//! a string `text` and a numeric first-stage `score` (other keys are skipped). Each text goes into a
//! [`TextSink`], so a 50 MB string is held only as far as scoring reads it, as a long line is.
//! serde_json cannot do this: it holds a whole string (twice) before handing it over.

use std::io::BufRead;

use crossrank::{Error, Result};

use crate::candidates::{io_error, Bounded, Candidates, Keep, Text, TextSink};

/// Keys longer than this are not a key crossrank reads: they are skipped, not held.
const MAX_KEY_BYTES: usize = 64;

/// Reads the array (its `[` not yet consumed) into `candidates`; returns the first-stage scores
/// when every candidate has one.
pub fn read_array<R: BufRead>(input: &mut Bounded<'_, R>, keep: Keep, candidates: &mut Candidates) -> Result<Option<Vec<f64>>> {
    let mut json = Json { input, offset: 0 };
    json.skip_whitespace()?;
    json.expect(b'[')?;
    let mut scores = Vec::new();
    let mut all_scored = true;
    json.items(b']', "after a candidate", |json| {
        let score = json.candidate(candidates.texts.len(), keep, candidates)?;
        all_scored &= score.is_some();
        scores.extend(score);
        Ok(())
    })?;
    json.skip_whitespace()?;
    if json.peek()?.is_some() {
        return Err(json.syntax("trailing characters after the array"));
    }
    Ok((all_scored && !scores.is_empty()).then_some(scores))
}

/// Where a string's bytes go.
enum StringSink<'s, 'k> {
    Text(&'s mut TextSink<'k>),
    Key(&'s mut Vec<u8>),
    Skip,
}

struct Json<'i, 'n, R> {
    input: &'i mut Bounded<'n, R>,
    /// Bytes consumed, for error positions.
    offset: u64,
}

impl<R: BufRead> Json<'_, '_, R> {
    fn syntax(&self, what: &str) -> Error {
        Error::invalid(format!("candidates look like JSON but do not parse: {what} at byte {}", self.offset))
    }

    /// The unread bytes (empty at the end of the input, or of what the bound allows).
    fn buffer(&mut self) -> Result<&[u8]> {
        let name = self.input.name;
        if self.input.inner.fill_buf().map_err(|e| io_error(name, e))?.is_empty() {
            if let Some(error) = self.input.too_long() {
                return Err(error);
            }
        }
        self.input.inner.fill_buf().map_err(|e| io_error(name, e))
    }

    fn peek(&mut self) -> Result<Option<u8>> {
        Ok(self.buffer()?.first().copied())
    }

    fn bump(&mut self, n: usize) {
        self.input.inner.consume(n);
        self.offset += n as u64;
    }

    fn next(&mut self) -> Result<Option<u8>> {
        let byte = self.peek()?;
        if byte.is_some() {
            self.bump(1);
        }
        Ok(byte)
    }

    fn expect(&mut self, byte: u8) -> Result<()> {
        match self.next()? {
            Some(b) if b == byte => Ok(()),
            _ => Err(self.syntax(&format!("expected `{}`", byte as char))),
        }
    }

    fn skip_whitespace(&mut self) -> Result<()> {
        loop {
            let buffer = self.buffer()?;
            let blank = buffer.iter().take_while(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r')).count();
            let all = blank == buffer.len() && blank > 0;
            self.bump(blank);
            if !all {
                return Ok(());
            }
        }
    }

    /// The items of an array or object (its opening bracket consumed) up to `close`, each read by
    /// `item` (at its first byte), separated by commas.
    fn items(&mut self, close: u8, place: &str, mut item: impl FnMut(&mut Self) -> Result<()>) -> Result<()> {
        self.skip_whitespace()?;
        if self.peek()? == Some(close) {
            self.bump(1);
            return Ok(());
        }
        loop {
            self.skip_whitespace()?;
            item(self)?;
            self.skip_whitespace()?;
            match self.next()? {
                Some(b',') => continue,
                Some(byte) if byte == close => return Ok(()),
                _ => return Err(self.syntax(&format!("expected `,` or `{}` {place}", close as char))),
            }
        }
    }

    /// A candidate's text (at its opening quote), through a [`TextSink`].
    fn text(&mut self, keep: Keep, candidates: &mut Candidates) -> Result<Text> {
        self.bump(1);
        let mut sink = TextSink::new(keep);
        self.string(StringSink::Text(&mut sink), candidates.spill())?;
        sink.finish(candidates.spill(), self.input.name, false)
    }

    /// One element of the array; returns its first-stage score, if it has one.
    fn candidate(&mut self, index: usize, keep: Keep, candidates: &mut Candidates) -> Result<Option<f64>> {
        match self.peek()? {
            Some(b'"') => {
                let text = self.text(keep, candidates)?;
                candidates.push(text);
                Ok(None)
            }
            Some(b'{') => {
                self.bump(1);
                let (mut text, mut score) = (None, None);
                self.items(b'}', "in an object", |json| {
                    json.expect(b'"')?;
                    let mut key = Vec::new();
                    json.string(StringSink::Key(&mut key), candidates.spill())?;
                    json.skip_whitespace()?;
                    json.expect(b':')?;
                    json.skip_whitespace()?;
                    match (key.as_slice(), json.peek()?) {
                        (b"text", Some(b'"')) if text.is_some() => Err(Error::invalid(format!("candidate {index} has \"text\" twice"))),
                        (b"text", Some(b'"')) => {
                            text = Some(json.text(keep, candidates)?);
                            Ok(())
                        }
                        (b"score", Some(b'-' | b'0'..=b'9')) => {
                            let start = json.offset;
                            let value = json.scalar()?;
                            // scalar() keeps 40 bytes: a longer number would be read cut short.
                            if json.offset - start > value.len() as u64 {
                                return Err(Error::invalid(format!("candidate {index}: \"score\" is longer than 40 characters")));
                            }
                            score = Some(value.parse::<f64>().map_err(|_| json.syntax("invalid number"))?);
                            Ok(())
                        }
                        (b"score", _) => Err(Error::invalid(format!("candidate {index}: \"score\" is not a number"))),
                        _ => json.skip_value(candidates),
                    }
                })?;
                let text = text.ok_or_else(|| Error::invalid(format!("candidate {index} is an object without a string \"text\"")))?;
                candidates.push(text);
                Ok(score)
            }
            Some(b'[') => {
                self.skip_value(candidates)?;
                Err(Error::invalid(format!("candidate {index} is an array, not a string")))
            }
            Some(_) => {
                let value = self.scalar()?;
                Err(Error::invalid(format!("candidate {index} is {value}, not a string")))
            }
            None => Err(self.syntax("unexpected end of input")),
        }
    }

    /// A string's contents (its opening quote consumed), unescaped into `sink`.
    fn string(&mut self, mut sink: StringSink, spill: &mut Option<crate::candidates::Spill>) -> Result<()> {
        let name = self.input.name;
        let mut put = |bytes: &[u8], sink: &mut StringSink| -> Result<()> {
            match sink {
                StringSink::Text(text) => text.push(bytes, spill, name),
                StringSink::Key(key) => {
                    let room = (MAX_KEY_BYTES + 1).saturating_sub(key.len());
                    key.extend_from_slice(&bytes[..bytes.len().min(room)]);
                    Ok(())
                }
                StringSink::Skip => Ok(()),
            }
        };
        loop {
            let buffer = self.buffer()?;
            let plain = buffer.iter().position(|&b| b == b'"' || b == b'\\' || b < 0x20).unwrap_or(buffer.len());
            if plain > 0 {
                put(&buffer[..plain], &mut sink)?;
                self.bump(plain);
                continue;
            }
            match self.next()? {
                None => return Err(self.syntax("unterminated string")),
                Some(b'"') => return Ok(()),
                Some(b'\\') => {
                    let escaped: u8 = match self.next()? {
                        Some(b'"') => b'"',
                        Some(b'\\') => b'\\',
                        Some(b'/') => b'/',
                        Some(b'b') => 0x08,
                        Some(b'f') => 0x0C,
                        Some(b'n') => b'\n',
                        Some(b'r') => b'\r',
                        Some(b't') => b'\t',
                        Some(b'u') => {
                            let character = self.unicode_escape()?;
                            put(character.encode_utf8(&mut [0; 4]).as_bytes(), &mut sink)?;
                            continue;
                        }
                        _ => return Err(self.syntax("invalid escape in a string")),
                    };
                    put(&[escaped], &mut sink)?;
                }
                Some(_) => return Err(self.syntax("control character in a string")),
            }
        }
    }

    /// The character of a `\uXXXX` escape (its `\u` consumed), joining a surrogate pair.
    fn unicode_escape(&mut self) -> Result<char> {
        let unit = self.hex4()?;
        let code = match unit {
            0xD800..=0xDBFF => {
                if self.next()? != Some(b'\\') || self.next()? != Some(b'u') {
                    return Err(self.syntax("lone leading surrogate in a \\u escape"));
                }
                let low = self.hex4()?;
                if !(0xDC00..=0xDFFF).contains(&low) {
                    return Err(self.syntax("lone leading surrogate in a \\u escape"));
                }
                0x10000 + ((u32::from(unit) - 0xD800) << 10) + (u32::from(low) - 0xDC00)
            }
            0xDC00..=0xDFFF => return Err(self.syntax("lone trailing surrogate in a \\u escape")),
            _ => u32::from(unit),
        };
        char::from_u32(code).ok_or_else(|| self.syntax("invalid \\u escape"))
    }

    fn hex4(&mut self) -> Result<u16> {
        let mut value = 0u16;
        for _ in 0..4 {
            let digit = self.next()?.and_then(|b| (b as char).to_digit(16)).ok_or_else(|| self.syntax("invalid \\u escape"))?;
            value = value * 16 + digit as u16;
        }
        Ok(value)
    }

    /// A number, `true`, `false` or `null`, as written (at most 40 bytes of it are kept).
    fn scalar(&mut self) -> Result<String> {
        let mut text = String::new();
        loop {
            let buffer = self.buffer()?;
            let run = buffer.iter().take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'+' | b'.')).count();
            text.extend(buffer[..run].iter().take(40usize.saturating_sub(text.len())).map(|&b| b as char));
            let done = run < buffer.len() || run == 0;
            self.bump(run);
            if done {
                break;
            }
        }
        let valid = matches!(text.as_str(), "true" | "false" | "null") || (text.parse::<f64>().is_ok() && text.starts_with(|c: char| c == '-' || c.is_ascii_digit()));
        if valid { Ok(text) } else { Err(self.syntax("expected a value")) }
    }

    /// Any value, read and dropped (nested arrays and objects too).
    fn skip_value(&mut self, candidates: &mut Candidates) -> Result<()> {
        let mut depth = 0usize;
        loop {
            self.skip_whitespace()?;
            match self.peek()? {
                Some(b'"') => {
                    self.bump(1);
                    self.string(StringSink::Skip, candidates.spill())?;
                }
                Some(b'[' | b'{') => {
                    self.bump(1);
                    depth += 1;
                    continue;
                }
                Some(b']' | b'}') if depth > 0 => {
                    self.bump(1);
                    depth -= 1;
                }
                Some(b',' | b':') if depth > 0 => {
                    self.bump(1);
                    continue;
                }
                Some(_) => {
                    self.scalar()?;
                }
                None => return Err(self.syntax("unexpected end of input")),
            }
            if depth == 0 {
                return Ok(());
            }
        }
    }
}
