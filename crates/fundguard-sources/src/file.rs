//! Files and stdin, one message per line; gzip is detected by its magic bytes.

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
    Ok(LineSource { name, reader, line: 0, buf: Vec::with_capacity(4096) })
}

impl LineSource {
    /// The input's name, as positions and dead letters show it.
    pub fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// The next line (without its line ending) and its position, or `None` at the end.
    pub fn next_line(&mut self) -> io::Result<Option<(&[u8], Position)>> {
        self.buf.clear();
        if self.reader.read_until(b'\n', &mut self.buf)? == 0 {
            return Ok(None);
        }
        self.line += 1;
        while matches!(self.buf.last(), Some(b'\n' | b'\r')) {
            self.buf.pop();
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
}
