//! Inputs the fuzz targets (`fuzz/`) found to crash or break a property, fed straight
//! to the parser, so each stays fixed without the fuzzer.

use readyloop::proto::http::files::{parse_range, RangeSpec};
use readyloop::proto::http::parser::{BodyDecoder, BodyFraming};

/// `http_range`: a `Range` value whose 7th byte is inside a UTF-8 character
/// (`bytesé=0-1`) panicked slicing a `&str` at a non-boundary; it is not a byte range
/// request, so the whole file is served.
#[test]
fn range_with_a_multibyte_character_at_byte_six() {
    assert_eq!(parse_range(b"bytes\xc3\xa9=0-1", 100), RangeSpec::Full);
    assert_eq!(parse_range("bytesé=0-1".as_bytes(), 100), RangeSpec::Full);
    assert_eq!(parse_range("bytéé=0-1".as_bytes(), 100), RangeSpec::Full);
    assert_eq!(parse_range("é".as_bytes(), 100), RangeSpec::Full);
    assert_eq!(parse_range(b"bytes=0-1", 100), RangeSpec::Single(0, 1));
}

/// `http_body`: `BodyDecoder::total` promised the body bytes decoded so far, but gave
/// the chunk sizes announced (the data not yet there) and 0 for a `Content-Length`
/// body.
#[test]
fn body_decoder_total_counts_decoded_bytes() {
    let mut d = BodyDecoder::new(BodyFraming::Chunked, 100);
    let mut out = Vec::new();
    d.feed(b"5\r\nhe", &mut out).unwrap();
    assert_eq!((d.total(), out.len()), (2, 2));
    d.feed(b"llo\r\n0\r\n\r\n", &mut out).unwrap();
    assert_eq!((d.total(), out.as_slice()), (5, &b"hello"[..]));

    let mut d = BodyDecoder::new(BodyFraming::Length(4), 100);
    let mut out = Vec::new();
    assert_eq!(d.feed(b"abcdEF", &mut out).unwrap(), 4);
    assert_eq!(d.total(), 4);
    assert!(d.is_done());
}
