/** Random container names in Docker's adjective_surname style (our own word lists). */
import crypto from 'node:crypto';

const adjectives = [
  'agile', 'amber', 'bold', 'brave', 'bright', 'calm', 'clever', 'cosmic', 'crisp', 'daring', 'deft', 'eager', 'earnest',
  'fervent', 'gentle', 'golden', 'happy', 'hardy', 'humble', 'jolly', 'keen', 'kind', 'lively', 'lucid', 'merry',
  'mighty', 'nimble', 'noble', 'patient', 'placid', 'proud', 'quick', 'quiet', 'rapid', 'serene', 'sharp', 'silent',
  'sleepy', 'steady', 'sunny', 'swift', 'tender', 'tidy', 'vivid', 'warm', 'wise', 'witty', 'zealous',
];
const surnames = [
  'agnesi', 'babbage', 'bell', 'boole', 'curie', 'darwin', 'dijkstra', 'einstein', 'euler', 'faraday', 'fermi',
  'franklin', 'galileo', 'gauss', 'goodall', 'hamilton', 'hopper', 'hypatia', 'johnson', 'kepler', 'knuth', 'lamarr',
  'lovelace', 'maxwell', 'meitner', 'mendel', 'newton', 'noether', 'pascal', 'pasteur', 'ritchie', 'shannon',
  'somerville', 'tesla', 'thompson', 'torvalds', 'turing', 'volta', 'wiles', 'wright', 'yalow', 'zuse',
];

export function randomName(taken: (name: string) => boolean): string {
  for (let attempt = 0; ; attempt++) {
    const a = adjectives[crypto.randomInt(adjectives.length)];
    const s = surnames[crypto.randomInt(surnames.length)];
    const name = attempt < 10 ? `${a}_${s}` : `${a}_${s}${crypto.randomInt(10)}`;
    if (!taken(name)) return name;
  }
}
