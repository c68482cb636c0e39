export class TrellisClient {}
