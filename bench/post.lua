-- wrk script: POST the file named by $BODY_FILE to the URL, as $CONTENT_TYPE (default JSON); with $HEADER_LENGTH set,
-- also send Inference-Header-Content-Length (the V2 binary tensor data extension); with $AUTHORIZATION, that header.
local f = assert(io.open(os.getenv("BODY_FILE"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = os.getenv("CONTENT_TYPE") or "application/json"
local header_length = os.getenv("HEADER_LENGTH")
if header_length and header_length ~= "" then wrk.headers["Inference-Header-Content-Length"] = header_length end
local authorization = os.getenv("AUTHORIZATION")
if authorization and authorization ~= "" then wrk.headers["Authorization"] = authorization end
