import { contractSuite } from "./contract.js";

await contractSuite("s3");
