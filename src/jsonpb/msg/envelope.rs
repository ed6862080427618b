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

/// A server stream's failure after its answer began, as grpc-gateway writes it:
/// `{"error":{"grpc_code":..,"http_code":..,"message":..,"http_status":..}}`.
#[derive(Default, Debug, Clone, PartialEq, Eq)]
pub struct StreamError(pub Option<StreamErrorDetail>);

#[derive(Default, Debug, Clone, PartialEq, Eq)]
pub struct StreamErrorDetail {
    pub grpc_code: u32,
    pub http_code: u32,
    pub message: String,
    pub http_status: String,
}

impl ToJson for StreamError {
    fn write_fields(&self, w: &mut Writer) {
        Msg::<StreamErrorDetail>::write(w, "error", &self.0);
    }
}

impl FromJson for StreamError {
    fn read_fields(&mut self, fields: &Fields, depth: usize) -> Result<()> {
        if let Some(v) = fields.take("error", "error") {
            self.0 = Msg::<StreamErrorDetail>::read(v, depth)?;
        }
        Ok(())
    }
}

impl ToJson for StreamErrorDetail {
    fn write_fields(&self, w: &mut Writer) {
        w.u32("grpc_code", self.grpc_code);
        w.u32("http_code", self.http_code);
        w.string("message", &self.message);
        w.string("http_status", &self.http_status);
    }
}

impl FromJson for StreamErrorDetail {
    fn read_fields(&mut self, fields: &Fields, depth: usize) -> Result<()> {
        if let Some(v) = fields.take("grpc_code", "grpc_code") {
            self.grpc_code = U32::read(v, depth)?;
        }
        if let Some(v) = fields.take("message", "message") {
            self.message = Str::read(v, depth)?;
        }
        Ok(())
    }
}
