//! Percent-encoding for one URL path segment or query value: RFC 3986's unreserved characters
//! kept, every other byte as `%XX`.

/// `s` with every byte but `A–Z a–z 0–9 - . _ ~` percent-encoded.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn unreserved_characters_stay_and_the_rest_is_encoded() {
        assert_eq!(super::encode("release/2.10"), "release%2F2.10");
        assert_eq!(super::encode("a b&c=d#é"), "a%20b%26c%3Dd%23%C3%A9");
        assert_eq!(super::encode("chronik-chaos-test_1.x~"), "chronik-chaos-test_1.x~");
    }
}
