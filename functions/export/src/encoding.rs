//! The export's content coding: gzip when the client accepts it, the CSV as
//! it is otherwise. API Gateway does not compress a streamed integration, so
//! the function does, chunk by chunk: each chunk of rows is compressed and
//! flushed (a sync flush) as it leaves, so rows still arrive while the export
//! reads, and memory holds one chunk whatever the size of the export. The
//! gzip trailer is written only when the export is complete: a transfer cut
//! short is also an incomplete gzip stream, which every decoder reports.

use std::io::Write;

use bytes::Bytes;
use flate2::Compression;
use flate2::write::GzEncoder;
use http::HeaderMap;
use http::header::ACCEPT_ENCODING;

/// Whether `Accept-Encoding` accepts gzip (`gzip` or `x-gzip` with a
/// non-zero quality, or `*` when gzip is not refused by name).
pub fn accepts_gzip(headers: &HeaderMap) -> bool {
    let mut by_name = None;
    let mut any = false;
    for value in headers.get_all(ACCEPT_ENCODING) {
        let Ok(value) = value.to_str() else { continue };
        for item in value.split(',') {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let quality = parts
                .find_map(|p| p.trim().strip_prefix("q=").map(str::to_owned))
                .and_then(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            match coding.as_str() {
                "gzip" | "x-gzip" => by_name = Some(quality > 0.0),
                "*" => any = quality > 0.0,
                _ => {}
            }
        }
    }
    by_name.unwrap_or(any)
}

/// Turns chunks of CSV into chunks of the body.
pub enum BodyEncoder {
    Identity,
    Gzip(GzEncoder<Vec<u8>>),
}

impl BodyEncoder {
    pub fn new(gzip: bool) -> Self {
        if gzip {
            Self::Gzip(GzEncoder::new(Vec::new(), Compression::default()))
        } else {
            Self::Identity
        }
    }

    /// `Content-Encoding` of the body, if any.
    pub fn content_encoding(&self) -> Option<&'static str> {
        match self {
            Self::Identity => None,
            Self::Gzip(_) => Some("gzip"),
        }
    }

    /// The body bytes for a chunk of CSV, ready to leave now.
    pub fn chunk(&mut self, csv: Vec<u8>) -> std::io::Result<Bytes> {
        match self {
            Self::Identity => Ok(Bytes::from(csv)),
            Self::Gzip(encoder) => {
                encoder.write_all(&csv)?;
                encoder.flush()?;
                Ok(Bytes::from(std::mem::take(encoder.get_mut())))
            }
        }
    }

    /// What ends a complete body (the gzip trailer), if anything.
    pub fn finish(self) -> std::io::Result<Option<Bytes>> {
        match self {
            Self::Identity => Ok(None),
            Self::Gzip(encoder) => Ok(Some(Bytes::from(encoder.finish()?))),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use flate2::read::GzDecoder;
    use http::HeaderValue;

    use super::*;

    fn accepts(values: &[&str]) -> bool {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(ACCEPT_ENCODING, HeaderValue::from_str(value).unwrap());
        }
        accepts_gzip(&headers)
    }

    #[test]
    fn accept_encoding_decides() {
        assert!(accepts(&["gzip"]));
        assert!(accepts(&["br, GZIP;q=0.5"]));
        assert!(accepts(&["deflate", "x-gzip"]));
        assert!(accepts(&["*"]));
        assert!(!accepts(&[]));
        assert!(!accepts(&["identity"]));
        assert!(!accepts(&["gzip;q=0"]));
        assert!(!accepts(&["*, gzip;q=0"]));
        assert!(!accepts(&["br"]));
    }

    #[test]
    fn gzip_chunks_decode_to_the_csv_and_a_cut_stream_is_an_error() {
        let mut encoder = BodyEncoder::new(true);
        let mut body = Vec::new();
        body.extend(encoder.chunk(b"User ID\r\n".to_vec()).unwrap());
        let first = body.len();
        body.extend(encoder.chunk(b"u1\r\nu2\r\n".to_vec()).unwrap());
        let cut = body.clone();
        body.extend(encoder.finish().unwrap().unwrap());
        let mut text = String::new();
        GzDecoder::new(&body[..]).read_to_string(&mut text).unwrap();
        assert_eq!(text, "User ID\r\nu1\r\nu2\r\n");
        // Each chunk is flushed: the first decodes on its own...
        let mut partial = Vec::new();
        let _ = GzDecoder::new(&cut[..first]).read_to_end(&mut partial);
        assert_eq!(partial, b"User ID\r\n");
        // ...but a stream without its trailer is not a complete file.
        let mut partial = String::new();
        assert!(
            GzDecoder::new(&cut[..])
                .read_to_string(&mut partial)
                .is_err()
        );
    }

    #[test]
    fn identity_passes_the_csv_through() {
        let mut encoder = BodyEncoder::new(false);
        assert_eq!(encoder.content_encoding(), None);
        assert_eq!(&encoder.chunk(b"a\r\n".to_vec()).unwrap()[..], b"a\r\n");
        assert_eq!(encoder.finish().unwrap(), None);
    }
}
