//! Files and stdin, one message per line; gzip is detected by its magic bytes.
//!
//! A line is never held in memory beyond the message limit: of a longer one only the
//! first `max_line + 1` bytes are kept (the rest is skipped), so the decoder refuses it
//! as over the limit and it is dead-lettered like any other bad message.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;
use std::sync::Arc;

use flate2::read::MultiGzDecoder;
use fundguard_core::Position;

/// Reads messages line by line, numbering them from 1.
pub struct LineSource {
    name: Arc<str>,
    reader: Box<dyn BufRead + Send>,
    line: u64,
    buf: Vec<u8>,
    max_line: usize,
}

/// Opens a file (`-` is stdin). A file starting with the gzip magic is decompressed.
pub fn open_lines(path: &Path) -> io::Result<LineSource> {
    let name: Arc<str> = Arc::from(path.display().to_string());
    let raw: Box<dyn Read + Send> =
        if path.as_os_str() == "-" { Box::new(io::stdin()) } else { Box::new(File::open(path)?) };
    let mut buffered = BufReader::with_capacity(1 << 20, raw);
    let gzip = buffered.fill_buf()?.starts_with(&[0x1f, 0x8b]);
    let reader: Box<dyn BufRead + Send> = if gzip {
        Box::new(BufReader::with_capacity(1 << 20, MultiGzDecoder::new(buffered)))
    } else {
        Box::new(buffered)
    };
    let max_line = fundguard_formats::MAX_MESSAGE_BYTES;
    Ok(LineSource { name, reader, line: 0, buf: Vec::with_capacity(4096), max_line })
}

impl LineSource {
    /// The input's name, as positions and dead letters show it.
    pub fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// Keeps at most `bytes + 1` bytes of a line (default [`fundguard_formats::MAX_MESSAGE_BYTES`]):
    /// a longer line comes out cut there, which the decoder (given the same limit) refuses.
    pub fn with_max_line(mut self, bytes: usize) -> Self {
        self.max_line = bytes;
        self
    }

    /// The next line (without its line ending) and its position, or `None` at the end.
    /// A line over the limit comes out as its first `max_line + 1` bytes.
    pub fn next_line(&mut self) -> io::Result<Option<(&[u8], Position)>> {
        self.buf.clear();
        // Room for a line at the limit and its `\r\n`: what does not fit is over the limit.
        let room = self.max_line.saturating_add(2) as u64;
        let read = (&mut self.reader).take(room).read_until(b'\n', &mut self.buf)?;
        if read == 0 {
            return Ok(None);
        }
        self.line += 1;
        if read as u64 == room && self.buf.last() != Some(&b'\n') {
            self.reader.skip_until(b'\n')?;
            self.buf.truncate(self.max_line.saturating_add(1));
        } else {
            while matches!(self.buf.last(), Some(b'\n' | b'\r')) {
                self.buf.pop();
            }
        }
        let position = Position::Line { input: self.name.clone(), line: self.line, index: 0 };
        Ok(Some((&self.buf, position)))
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn reads_plain_and_gzip_alike() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("a.jsonl");
        std::fs::write(&plain, "one\r\ntwo\n\nfour").unwrap();
        let gz = dir.path().join("a.jsonl.gz");
        let mut enc = flate2::write::GzEncoder::new(File::create(&gz).unwrap(), flate2::Compression::fast());
        enc.write_all(b"one\r\ntwo\n\nfour").unwrap();
        enc.finish().unwrap();
        for path in [plain, gz] {
            let mut src = open_lines(&path).unwrap();
            let mut lines = Vec::new();
            while let Some((line, pos)) = src.next_line().unwrap() {
                lines.push((String::from_utf8(line.to_vec()).unwrap(), pos.to_string()));
            }
            let name = path.display().to_string();
            assert_eq!(
                lines,
                vec![
                    ("one".into(), format!("{name}:1")),
                    ("two".into(), format!("{name}:2")),
                    ("".into(), format!("{name}:3")),
                    ("four".into(), format!("{name}:4"))
                ]
            );
        }
    }

    #[test]
    fn a_line_over_the_limit_is_cut_past_the_limit_and_the_next_line_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.jsonl");
        let long = "x".repeat(100);
        std::fs::write(&path, format!("1234\r\n12345\r\n123456\n{long}\r\nafter\n{long}")).unwrap();
        let mut src = open_lines(&path).unwrap().with_max_line(5);
        let mut lines = Vec::new();
        while let Some((line, pos)) = src.next_line().unwrap() {
            lines.push((String::from_utf8(line.to_vec()).unwrap(), pos.to_string()));
        }
        let name = path.display().to_string();
        let expected = [("1234", 1), ("12345", 2), ("123456", 3), ("xxxxxx", 4), ("after", 5), ("xxxxxx", 6)];
        assert_eq!(lines, expected.map(|(l, n)| (l.to_string(), format!("{name}:{n}"))));
    }
}
