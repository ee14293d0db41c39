//! A minimal BTF encoder for tests: builds blobs with just the types a test
//! needs, so parsing and walking are checked on known, tiny input.

#[derive(Default)]
pub struct BtfBuilder {
    types: Vec<u8>,
    strings: Vec<u8>,
    next_id: u32,
}

const INT: u32 = 1;
const PTR: u32 = 2;
const STRUCT: u32 = 4;
const UNION: u32 = 5;
const ENUM: u32 = 6;
const TYPEDEF: u32 = 8;
const FUNC: u32 = 12;
const FUNC_PROTO: u32 = 13;

impl BtfBuilder {
    pub fn new() -> Self {
        Self {
            strings: vec![0],
            next_id: 1,
            ..Default::default()
        }
    }

    fn str(&mut self, s: &str) -> u32 {
        if s.is_empty() {
            return 0;
        }
        let off = self.strings.len() as u32;
        self.strings.extend_from_slice(s.as_bytes());
        self.strings.push(0);
        off
    }

    fn push(&mut self, name: &str, kind: u32, vlen: u32, size_or_type: u32) -> u32 {
        let name = self.str(name);
        for v in [name, (kind << 24) | vlen, size_or_type] {
            self.types.extend_from_slice(&v.to_le_bytes());
        }
        self.next_id += 1;
        self.next_id - 1
    }

    fn words(&mut self, ws: &[u32]) {
        for w in ws {
            self.types.extend_from_slice(&w.to_le_bytes());
        }
    }

    pub fn int(&mut self, name: &str, bytes: u32) -> u32 {
        let id = self.push(name, INT, 0, bytes);
        self.words(&[bytes * 8]);
        id
    }

    pub fn ptr(&mut self, to: u32) -> u32 {
        self.push("", PTR, 0, to)
    }

    pub fn typedef(&mut self, name: &str, to: u32) -> u32 {
        self.push(name, TYPEDEF, 0, to)
    }

    /// `members`: (name, type id, byte offset).
    pub fn composite(&mut self, name: &str, union: bool, size: u32, members: &[(&str, u32, u32)]) -> u32 {
        let kind = if union { UNION } else { STRUCT };
        let id = self.push(name, kind, members.len() as u32, size);
        for &(m, ty, off) in members {
            let n = self.str(m);
            self.words(&[n, ty, off * 8]);
        }
        id
    }

    /// A struct with BTF's `kind_flag` set, as pahole writes structs
    /// with bitfields. `members`: (name, type id, bit offset, bitfield
    /// width or 0).
    pub fn bitfield_struct(&mut self, name: &str, size: u32, members: &[(&str, u32, u32, u32)]) -> u32 {
        // kind_flag is the info word's top bit, just above the kind.
        let id = self.push(name, STRUCT | 0x80, members.len() as u32, size);
        for &(m, ty, bit, width) in members {
            let n = self.str(m);
            self.words(&[n, ty, (width << 24) | bit]);
        }
        id
    }

    pub fn enumeration(&mut self, name: &str, values: &[(&str, u32)]) -> u32 {
        let id = self.push(name, ENUM, values.len() as u32, 4);
        for &(n, v) in values {
            let n = self.str(n);
            self.words(&[n, v]);
        }
        id
    }

    pub fn func_proto(&mut self, params: &[(&str, u32)]) -> u32 {
        let id = self.push("", FUNC_PROTO, params.len() as u32, 0);
        for &(n, ty) in params {
            let n = self.str(n);
            self.words(&[n, ty]);
        }
        id
    }

    pub fn func(&mut self, name: &str, proto: u32) -> u32 {
        self.push(name, FUNC, 0, proto)
    }

    pub fn build(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&0xeb9fu16.to_le_bytes());
        out.push(1); // version
        out.push(0); // flags
        let hdr_len = 24u32;
        let type_len = self.types.len() as u32;
        for v in [hdr_len, 0, type_len, type_len, self.strings.len() as u32] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&self.types);
        out.extend_from_slice(&self.strings);
        out
    }
}
