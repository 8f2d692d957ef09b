/**
 * Membership arithmetic shared by the core and the state machines that must know the configuration at their
 * applied index (to put it in a snapshot): one change at a time, applied when its entry commits.
 */
import type { ConfChange, ConfState } from './types.js';

/** The configuration after `cc`. `addVoter` promotes a learner; a voter cannot be demoted to learner directly. */
export function applyConfChangeTo(conf: ConfState, cc: ConfChange): ConfState {
  const voters = conf.voters.filter((v) => v !== cc.member);
  const learners = conf.learners.filter((l) => l !== cc.member);
  switch (cc.type) {
    case 'addVoter':
      if (conf.voters.includes(cc.member)) return { voters: [...conf.voters], learners: [...conf.learners] };
      return { voters: [...voters, cc.member], learners };
    case 'addLearner':
      if (conf.voters.includes(cc.member)) return { voters: [...conf.voters], learners: [...conf.learners] };
      return { voters, learners: [...learners, cc.member] };
    case 'removeMember':
      return { voters, learners };
  }
}
