//! Kafka's wire format by hand, for the few requests the harness sends straight to one node
//! (ListOffsets in `log_end`, Fetch in `record_origin`): a request's size-prefixed frame with
//! its v1 header, and a cursor over a response's big-endian fields.

/// A request frame: size, then the header (api key, version, correlation id, client id
/// `chronik-chaos`), then `body`.
pub fn frame(api_key: i16, version: i16, correlation: i32, body: &[u8]) -> Vec<u8> {
    let client = b"chronik-chaos";
    let mut b = Vec::with_capacity(10 + client.len() + body.len());
    b.extend_from_slice(&api_key.to_be_bytes());
    b.extend_from_slice(&version.to_be_bytes());
    b.extend_from_slice(&correlation.to_be_bytes());
    b.extend_from_slice(&(client.len() as i16).to_be_bytes());
    b.extend_from_slice(client);
    b.extend_from_slice(body);
    let mut out = (b.len() as i32).to_be_bytes().to_vec();
    out.extend(b);
    out
}

/// A cursor over a response body; `what` names the response in errors.
pub struct Reader<'a> {
    b: &'a [u8],
    at: usize,
    what: &'static str,
}

impl<'a> Reader<'a> {
    pub fn new(b: &'a [u8], what: &'static str) -> Reader<'a> {
        Reader { b, at: 0, what }
    }
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let s = self.b.get(self.at..self.at + n).ok_or_else(|| format!("truncated {} response", self.what))?;
        self.at += n;
        Ok(s)
    }
    pub fn i16(&mut self) -> Result<i16, String> {
        Ok(i16::from_be_bytes(self.take(2)?.try_into().expect("2 bytes")))
    }
    pub fn i32(&mut self) -> Result<i32, String> {
        Ok(i32::from_be_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }
    pub fn i64(&mut self) -> Result<i64, String> {
        Ok(i64::from_be_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }
    pub fn string(&mut self) -> Result<String, String> {
        let n = self.i16()?.max(0) as usize;
        Ok(String::from_utf8_lossy(self.take(n)?).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_carry_their_size_and_header() {
        let f = frame(2, 1, 9, &[7, 7]);
        assert_eq!(f[..4], (f.len() as i32 - 4).to_be_bytes());
        assert_eq!(&f[4..10], &[0, 2, 0, 1, 0, 0][..]);
        assert_eq!(&f[f.len() - 2..], &[7, 7]);
    }

    #[test]
    fn the_reader_reads_fields_in_order_and_says_what_was_truncated() {
        let mut r = Reader::new(&[0, 1, 0, 0, 0, 2, 0, 2, b'h', b'i'], "Fetch");
        assert_eq!((r.i16().unwrap(), r.i32().unwrap(), r.string().unwrap()), (1, 2, "hi".to_string()));
        assert_eq!(r.i16().unwrap_err(), "truncated Fetch response");
    }
}
