//! One error type for everything the transpiler refuses, carrying where it happened.
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub message: String,
    /// Byte offset in the input .wasm, when known.
    pub offset: Option<usize>,
    /// Index of the function (in the function index space) being translated, when relevant.
    pub func: Option<u32>,
}

impl Error {
    pub fn new(message: impl Into<String>) -> Self {
        Error {
            message: message.into(),
            offset: None,
            func: None,
        }
    }
    pub fn at(message: impl Into<String>, offset: impl TryInto<usize>) -> Self {
        Error {
            message: message.into(),
            offset: offset.try_into().ok(),
            func: None,
        }
    }
    pub fn in_func(mut self, func: u32) -> Self {
        self.func.get_or_insert(func);
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(func) = self.func {
            write!(f, " (in function {func})")?;
        }
        if let Some(off) = self.offset {
            write!(f, " (at byte offset 0x{off:x})")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

impl From<wasmparser::BinaryReaderError> for Error {
    fn from(e: wasmparser::BinaryReaderError) -> Self {
        Error::at(e.message().to_string(), e.offset())
    }
}

pub type Result<T> = std::result::Result<T, Error>;
