//! Where struct members are: byte offsets through nested and anonymous
//! structs and unions, bit offsets and widths of bitfields, struct sizes.
//! The eBPF programs read kernel memory at these offsets.

use btf_rs::Type;

use super::{BtfError, KernelBtf};

impl KernelBtf {
    /// `sizeof(struct name)`.
    pub fn struct_size(&self, name: &str) -> Result<u32, BtfError> {
        Ok(self.composite(name)?.size() as u32)
    }

    /// Byte offset of `path` (e.g. `["nd_net", "net"]`) inside struct `ty`,
    /// looking through anonymous unions and structs the way C does.
    pub fn member_offset(&self, ty: &str, path: &[&str]) -> Result<u32, BtfError> {
        let no_member = || BtfError::NoMember {
            ty: ty.into(),
            path: path.join("."),
        };
        let mut current = self.composite(ty)?;
        let mut offset_bits = 0u32;
        for (i, want) in path.iter().enumerate() {
            let (bits, member_ty, _) = self.find_member(&current, want)?.ok_or_else(no_member)?;
            offset_bits += bits;
            if i + 1 < path.len() {
                current = match self.strip(member_ty)? {
                    Type::Struct(s) | Type::Union(s) => s,
                    _ => return Err(no_member()),
                };
            }
        }
        if !offset_bits.is_multiple_of(8) {
            return Err(BtfError::Malformed(format!(
                "{ty}.{} is a bitfield",
                path.join(".")
            )));
        }
        Ok(offset_bits / 8)
    }

    /// Bit offset and width of `path` inside struct `ty`, for members that
    /// may be bitfields (`inet_connection_sock.icsk_ca_state: 5`). Offsets
    /// count as BTF counts them: from the least significant bit of the
    /// containing storage on a little-endian kernel. Widths of bitfields
    /// come from the member's encoding (structs with BTF's `kind_flag`,
    /// what pahole emits for any struct with bitfields); other members are
    /// as wide as their type.
    pub fn member_bits(&self, ty: &str, path: &[&str]) -> Result<(u32, u32), BtfError> {
        let no_member = || BtfError::NoMember {
            ty: ty.into(),
            path: path.join("."),
        };
        let (last, parents) = path.split_last().ok_or_else(no_member)?;
        let (base, current) = if parents.is_empty() {
            (0, self.composite(ty)?)
        } else {
            let mut current = self.composite(ty)?;
            let mut bits = 0;
            for want in parents {
                let (b, t, _) = self.find_member(&current, want)?.ok_or_else(no_member)?;
                bits += b;
                current = match self.strip(t)? {
                    Type::Struct(s) | Type::Union(s) => s,
                    _ => return Err(no_member()),
                };
            }
            (bits, current)
        };
        let (bits, t, width) = self.find_member(&current, last)?.ok_or_else(no_member)?;
        let width = match width {
            0 => self.type_bits(t)?,
            w => w,
        };
        Ok((base + bits, width))
    }

    /// Width in bits of a scalar or composite type.
    fn type_bits(&self, t: Type) -> Result<u32, BtfError> {
        Ok(8 * match self.strip(t)? {
            Type::Int(i) => i.size(),
            Type::Enum(e) => e.size(),
            Type::Enum64(e) => e.size(),
            Type::Struct(s) | Type::Union(s) => s.size(),
            // The kernel's pointers are the size of ours (same machine).
            Type::Ptr(_) => size_of::<usize>(),
            other => return Err(BtfError::Malformed(format!("no size for a {}", other.name()))),
        } as u32)
    }

    /// Finds a named member, descending into anonymous members; returns its
    /// bit offset relative to `s`, its type and its bitfield width (0 when
    /// it is not a bitfield).
    fn find_member(&self, s: &btf_rs::Struct, want: &str) -> Result<Option<(u32, Type, u32)>, BtfError> {
        for m in &s.members {
            let name = self.name_of(m);
            if name == want {
                return Ok(Some((
                    m.bit_offset(),
                    self.chained(m)?,
                    m.bitfield_size().unwrap_or(0),
                )));
            }
            if name.is_empty()
                && let Type::Struct(inner) | Type::Union(inner) = self.strip(self.chained(m)?)?
                && let Some((bits, t, width)) = self.find_member(&inner, want)?
            {
                return Ok(Some((m.bit_offset() + bits, t, width)));
            }
        }
        Ok(None)
    }
}
