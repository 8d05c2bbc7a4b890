import { LeaseLostError } from "../../errors.js";

/** What a lease needs of the ledger that granted it. */
export interface LeaseKeeper {
  readonly leaseMs: number;
  renew(table: string, date: string, owner: string): Promise<boolean>;
  release(table: string, date: string, owner: string): Promise<void>;
}

/** A held lease. Renew it during long work; every ledger write checks it is still ours. */
export class Lease {
  private renewedAt = Date.now();
  constructor(
    readonly ledger: LeaseKeeper,
    readonly table: string,
    readonly date: string,
    readonly owner: string,
  ) {}

  /** Renew if a third of the lease has passed; throws LeaseLostError if it was taken. */
  async keepAlive(): Promise<void> {
    if (Date.now() - this.renewedAt < this.ledger.leaseMs / 3) return;
    if (!(await this.ledger.renew(this.table, this.date, this.owner))) {
      throw new LeaseLostError(this.table, this.date);
    }
    this.renewedAt = Date.now();
  }

  /** Throws LeaseLostError unless the lease is still ours (renewing it if it is). */
  async check(): Promise<void> {
    if (!(await this.ledger.renew(this.table, this.date, this.owner))) {
      throw new LeaseLostError(this.table, this.date);
    }
    this.renewedAt = Date.now();
  }

  release(): Promise<void> {
    return this.ledger.release(this.table, this.date, this.owner);
  }
}
