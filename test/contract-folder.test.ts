import { contractSuite } from "./contract.js";

await contractSuite("folder");
