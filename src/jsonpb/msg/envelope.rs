//! The gateway's own envelopes: a stream message `{"result":...}` and the error body.

use super::*;

/// One message of a gateway stream: `{"result": T}`.
#[derive(Default)]
pub struct StreamResult<T>(pub T);

impl<T: FromJson> FromJson for StreamResult<T> {
    fn read_fields(&mut self, fields: &Fields, depth: usize) -> Result<()> {
        if let Some(v) = fields.take("result", "result") {
            self.0 = T::from_value(v, depth + 1)?;
        }
        Ok(())
    }
}

/// The bytes of one stream message: `{"result":{...}}` and a newline, as the gateway sends it.
pub fn stream_result(msg: &impl ToJson) -> Vec<u8> {
    let mut w = Writer::default();
    w.begin_object();
    object(&mut w, "result", msg);
    w.end_object();
    let mut out = w.finish().into_bytes();
    out.push(b'\n');
    out
}

/// etcd's gateway error body `{"error":..,"message":..,"code":..}`.
#[derive(Default, Debug, Clone, PartialEq, Eq)]
pub struct ErrorBody {
    pub message: String,
    pub code: i32,
}

impl ErrorBody {
    pub fn to_body(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.begin_object();
        w.string("error", &self.message);
        w.string("message", &self.message);
        w.i32("code", self.code);
        w.end_object();
        w.finish().into_bytes()
    }
}

impl FromJson for ErrorBody {
    fn read_fields(&mut self, fields: &Fields, depth: usize) -> Result<()> {
        if let Some(v) = fields.take("error", "error") {
            self.message = Str::read(v, depth)?;
        }
        if let Some(v) = fields.take("message", "message") {
            self.message = Str::read(v, depth)?;
        }
        if let Some(v) = fields.take("code", "code") {
            self.code = I32::read(v, depth)?;
        }
        Ok(())
    }
}
